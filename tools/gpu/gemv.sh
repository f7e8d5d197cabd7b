#!/bin/bash
# GPU check of the native few-row GEMV behind linear/mm (hard limit 25 s; most important first):
# its tests against the float64 reference (both q8_0/q4_0 kernels included), the bf16 table of
# native vs cuBLAS in the same run with what dispatch picks (% of measured copy bandwidth), 4 and
# 8 rows, both quantized GEMV kernels (FLAGSTONE_QUANT_GEMV=warp|staged), and the tuning sweep of
# the narrow shapes. The fused decode GEMV tests run in engine.sh. Output: $OUT/gemv.txt.
o="$OUT/gemv.txt"
b=build-gpu
t=$b/tests/ops/cuda/ops_cuda_gemv_timing
{
  echo "== date $(date -u +%FT%TZ), HEAD $(git rev-parse --short HEAD 2>/dev/null)"
  echo "== gemv tests (float64 reference)"
  timeout 6 $b/tests/ops/cuda/ops_cuda_gemv_tests --gtest_brief=1 --gtest_filter='-CudaGemv.Fused*' 2>&1 | tail -25
  echo "== linear bf16, 1 row: native vs cuBLAS, and what dispatch picks"
  timeout 6 $t --rows 1 2>&1 | tail -16
  echo "== linear bf16, 4 and 8 rows"
  timeout 3 $t --rows 4,8 --shapes 2048x2048,4096x4096,4096x14336 2>&1 | tail -8
  echo "== quantized GEMV, both kernels"
  timeout 5 $t --rows 0 --quant 2>&1 | tail -20
  echo "== native tuning sweep (1 row, graph us per call)"
  timeout 3 $t --rows 0 --sweep --shapes 3072x2048,2048x2048,2048x8192,4096x4096 2>&1 | grep sweep
} >"$o" 2>&1
