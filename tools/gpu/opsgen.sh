#!/bin/bash
# GPU check of the generated provider (kernel-language ops) and the CLBlast GEMM: parity of every
# implementation against the float64 reference on cuda:0 and NVIDIA OpenCL, with the tallies per
# device/provider for docs/backends.md, and the failures. Output: $OUT/opsgen.txt.
o="$OUT/opsgen.txt"
b=build-gpu
{
  echo "== devices"
  timeout 20 $b/src/cli/flagstone info 2>&1 | head -10
  echo "== parity on every device (generated/vendor lines and failures)"
  rm -f /tmp/opsgen-parity.txt
  FLAGSTONE_OPS_PARITY_REPORT=/tmp/opsgen-parity.txt timeout 130 $b/tests/ops/ops_parity_test \
    --gtest_brief=1 2>&1 | grep -E "generated|vendor|Failure|FAILED|PASSED|rror|refused" |
    grep -vE "cpu (native|vendor|reference)" | head -200
  echo "== parity report (family device provider passed failed refused)"
  grep -E "generated|vendor" /tmp/opsgen-parity.txt
  echo "== totals per device/provider"
  awk '{k=$2" "$3; p[k]+=$4; f[k]+=$5; r[k]+=$6} END {for (k in p) print k, p[k], "passed", f[k], "failed", r[k], "refused"}' \
    /tmp/opsgen-parity.txt | sort
} >"$o" 2>&1
