#!/bin/bash
# GPU check of the GGUF q8_0/q4_0 GEMV behind linear_quantized (decode of Q8_0/Q4_0 models),
# budget 30 s, most important first: its tests in every kernel against the float64 reference,
# the per-call time of each kernel variant (FLAGSTONE_QUANT_GEMV=warp|staged|vec, vec with 1/2/4
# warps per row) as % of the copy bandwidth measured in the same run, then the engine decode of a
# synthetic llama-1b in q8_0 with the default kernel and with vec. Output: $OUT/quant.txt.
o="$OUT/quant.txt"
b=build-gpu
f=$b/src/cli/flagstone
{
  echo "== date $(date -u +%FT%TZ), HEAD $(git rev-parse --short HEAD 2>/dev/null) (t=${SECONDS}s)"
  echo "== ops_cuda_quant_tests (float64 reference, every kernel)"
  timeout -k 1 8 $b/tests/ops/cuda/ops_cuda_quant_tests --gtest_brief=1 2>&1 | grep -v "^Running main" | tail -30
  echo "== GEMV per kernel variant, 1 row of bf16 (t=${SECONDS}s)"
  timeout -k 1 12 $b/tests/ops/cuda/ops_cuda_quant_timing --variants warp,staged,vec,vec/w1,vec/w2,vec/w4 2>&1 | tail -80
  echo "== 4 rows, vec vs warp, two shapes (t=${SECONDS}s)"
  timeout -k 1 3 $b/tests/ops/cuda/ops_cuda_quant_timing --rows 4 --shapes 4096x4096,14336x4096 \
    --variants warp,vec 2>&1 | tail -12
  for v in warp vec; do
    echo "== bench model --synthetic llama-1b --dtype q8_0, FLAGSTONE_QUANT_GEMV=$v (t=${SECONDS}s)"
    FLAGSTONE_QUANT_GEMV=$v timeout -k 1 6 $f bench model --synthetic llama-1b --device cuda:0 \
      --dtype q8_0 -p 16 -n 64 -r 2 --no-peak 2>&1 | tail -6
  done
  echo "== end (t=${SECONDS}s)"
} >"$o" 2>&1
