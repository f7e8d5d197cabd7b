#!/bin/bash
# Session 25's final GPU check: the streamed GEMV's tests (the greedy pick and the embedding
# lookup among them) and the engine's CUDA model tests, then `flagstone bench model` on llama-1b
# (twice) and llama-8b with the peaks measured in the same run, and the 2048-token prefill of
# both. Output: $OUT/final25.txt.
o="$OUT/final25.txt"
b=build-gpu
f=$b/src/cli/flagstone
{
  echo "== date $(date -u +%FT%TZ), HEAD $(git rev-parse --short HEAD 2>/dev/null)"
  timeout 100 $b/tests/ops/cuda/ops_cuda_gemv_tests --gtest_brief=1 2>&1 | tail -4
  timeout 200 $b/tests/engine/engine_model_test --gtest_brief=1 --gtest_filter='*cuda*' 2>&1 | tail -6
  for m in llama-1b llama-1b llama-8b; do
    timeout 120 $f bench model --synthetic $m --device cuda:0 --dtype bf16 -p 512 -n 128 -r 3 2>&1 | grep -v "^flagstone ops"
  done
  for m in llama-1b llama-8b; do
    timeout 120 $f bench model --synthetic $m --device cuda:0 --dtype bf16 -p 2048 -n 0 -r 2 2>&1 | grep -E "pp2048|^peak"
  done
} >"$o" 2>&1
