#!/bin/bash
# Full operator parity on the GPU machine: every family on every device (cpu, cuda:0, NVIDIA
# OpenCL) in the default dispatch configuration, with the tallies per family/device/provider for
# docs/backends.md. PARITY_FAMILIES (the suite's family indices, default all) narrows the run.
# Output: $OUT/parity.txt.
o="$OUT/parity.txt"
t=build-gpu/tests/ops/ops_parity_test
{
  echo "== devices"
  timeout 20 build-gpu/src/cli/flagstone info 2>&1 | grep -E "^  (cpu|cuda|opencl):" | head -5
  for fam in ${PARITY_FAMILIES:-0 1 2 3 4 5 6 7 8 9 10 11}; do
    rm -f /tmp/parity-$fam.txt
    FLAGSTONE_OPS_PARITY_REPORT=/tmp/parity-$fam.txt timeout 200 $t --gtest_filter="*/$fam" \
      >/tmp/parity-$fam.log 2>&1
    echo "== family $fam rc=$?"
    cat /tmp/parity-$fam.txt 2>/dev/null
    grep -A2 "Failure" /tmp/parity-$fam.log | grep -vE "^--$|Failure$" | cut -c1-300 | head -10
  done
} >"$o" 2>&1
