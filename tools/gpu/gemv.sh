#!/bin/bash
# GPU check of the native few-row GEMV behind linear/mm (budget 60 s): its tests against the
# float64 reference, parity of the linalg family on cuda, and the timing table (native vs cuBLAS
# in the same run, % of measured copy bandwidth; q8_0/q4_0 GEMV; a tuning sweep).
# Output: $OUT/gemv.txt.
o="$OUT/gemv.txt"
b=build-gpu
{
  echo "== date $(date -u +%FT%TZ), HEAD $(git rev-parse --short HEAD 2>/dev/null)"
  nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader 2>&1
  echo "== gemv tests"
  timeout 20 $b/tests/ops/cuda/ops_cuda_gemv_tests --gtest_brief=1 2>&1 | tail -30
  echo "== parity of the linalg family (opencl hidden)"
  rm -f /tmp/gemv_parity.txt
  OCL_ICD_VENDORS=/nonexistent FLAGSTONE_OPS_PARITY_REPORT=/tmp/gemv_parity.txt \
    timeout 20 $b/tests/ops/ops_parity_test --gtest_brief=1 --gtest_filter='*/9' 2>&1 |
    grep -E "Failure|FAILED|PASSED|rror|Expected|which is|differs|mismatch" | head -20
  grep cuda /tmp/gemv_parity.txt
  echo "== timing: bf16, 1/4/8 rows, quant, sweep"
  timeout 40 $b/tests/ops/cuda/ops_cuda_gemv_timing --rows 1,4,8 --quant --sweep 2>&1 | tail -80
} >"$o" 2>&1
