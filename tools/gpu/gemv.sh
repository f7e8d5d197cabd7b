#!/bin/bash
# GPU check of the native few-row GEMV behind linear/mm (hard limit 30 s; most important first):
# its tests against the float64 reference (both q8_0/q4_0 kernels included), the bf16 table of
# native vs cuBLAS in the same run (% of measured copy bandwidth), both quantized GEMV kernels
# (FLAGSTONE_QUANT_GEMV=warp|staged), the tuning sweep, 4/8-row rows, parity of linalg on cuda.
# Output: $OUT/gemv.txt.
o="$OUT/gemv.txt"
b=build-gpu
t=$b/tests/ops/cuda/ops_cuda_gemv_timing
{
  echo "== date $(date -u +%FT%TZ), HEAD $(git rev-parse --short HEAD 2>/dev/null)"
  echo "== gemv tests (float64 reference)"
  timeout 6 $b/tests/ops/cuda/ops_cuda_gemv_tests --gtest_brief=1 2>&1 | tail -25
  echo "== linear bf16, 1 row: native vs cuBLAS"
  timeout 6 $t --rows 1 2>&1 | tail -16
  echo "== quantized GEMV, both kernels"
  timeout 5 $t --rows 0 --quant 2>&1 | tail -20
  echo "== native tuning sweep (1 row, graph us per call)"
  timeout 5 $t --rows 0 --sweep 2>&1 | grep sweep
  echo "== linear bf16, 4 and 8 rows"
  timeout 3 $t --rows 4,8 --shapes 2048x2048,3072x2048,2048x8192,4096x4096,4096x14336 2>&1 | tail -12
  echo "== parity of the linalg family on cuda (opencl hidden)"
  OCL_ICD_VENDORS=/nonexistent FLAGSTONE_OPS_PARITY_REPORT=/tmp/gemv_parity.txt \
    timeout 4 $b/tests/ops/ops_parity_test --gtest_brief=1 --gtest_filter='*/9' 2>&1 |
    grep -E "Failure|FAILED|PASSED|differs|mismatch" | head -10
  grep cuda /tmp/gemv_parity.txt 2>/dev/null
} >"$o" 2>&1
