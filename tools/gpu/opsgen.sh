#!/bin/bash
# GPU check of the generated provider (kernel-language ops) and the CLBlast GEMM: parity of every
# implementation against the float64 reference on cuda:0 and NVIDIA OpenCL, with the tallies per
# device/provider for docs/backends.md, and the failures. Families not yet enabled on cuda by
# default run in a second process with FLAGSTONE_OPS_GENERATED_CUDA=all, so a faulting kernel
# cannot take the device down for the first run. Output: $OUT/opsgen.txt.
o="$OUT/opsgen.txt"
b=build-gpu
t=$b/tests/ops/ops_parity_test
run() {  # name, timeout, gtest filter, extra env
  rm -f /tmp/opsgen-$1.txt
  env FLAGSTONE_OPS_PARITY_REPORT=/tmp/opsgen-$1.txt $4 timeout $2 $t --gtest_filter="$3" \
    >/tmp/opsgen-$1.log 2>&1
  echo "== $1: rc=$? (filter $3 $4)"
  grep -E "generated|vendor" /tmp/opsgen-$1.txt
  echo "-- failures (first 40 messages)"
  grep -A2 "Failure" /tmp/opsgen-$1.log | grep -vE "^--$|Failure$" | cut -c1-400 | head -40
  grep -E "FAILED|PASSED" /tmp/opsgen-$1.log | head -20
}
{
  echo "== devices"
  timeout 20 $b/src/cli/flagstone info 2>&1 | grep -E "^  (cpu|cuda|opencl):" | head -5
  run cuda-all 45 "*/4:*/5" "FLAGSTONE_OPS_GENERATED_CUDA=all"
  run default 170 "*/0:*/1:*/2:*/9" ""
  run movement-factory 90 "*/10:*/11" "FLAGSTONE_OPS_GENERATED_CUDA=all"
  echo "== generated/CLBlast tests"
  timeout 10 $b/tests/ops/ops_generated_test --gtest_brief=1 2>&1 | tail -15
} >"$o" 2>&1
