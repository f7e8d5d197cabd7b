#!/bin/bash
# Session 25's check of the final tree: the streamed GEMV's tests, the engine's CUDA model tests
# and the bench CLI tests, then llama-1b tg128 with the peaks. Output: $OUT/final25c.txt.
o="$OUT/final25c.txt"
b=build-gpu
{
  echo "== date $(date -u +%FT%TZ)"
  timeout 100 $b/tests/ops/cuda/ops_cuda_gemv_tests --gtest_brief=1 2>&1 | tail -3
  timeout 200 $b/tests/engine/engine_model_test --gtest_brief=1 --gtest_filter='*cuda*' 2>&1 | tail -3
  timeout 100 $b/tests/engine/engine_generate_test --gtest_brief=1 --gtest_filter='BenchModel*' 2>&1 | tail -3
  timeout 120 $b/src/cli/flagstone bench model --synthetic llama-1b --device cuda:0 --dtype bf16 -p 512 -n 128 -r 3 2>&1 | grep -E "tg128|^peak"
} >"$o" 2>&1
