#!/bin/bash
# Session 22's final GPU check: the streamed-GEMV tests five times over (the norm weight now
# staged in shared memory before the wait), the engine's model tests, then `flagstone bench
# model` on llama-1b and llama-8b with the copy peak. Output: $OUT/final22.txt.
o="$OUT/final22.txt"
b=build-gpu
f=$b/src/cli/flagstone
{
  echo "== date $(date -u +%FT%TZ), HEAD $(git rev-parse --short HEAD 2>/dev/null)"
  timeout 90 $b/tests/ops/cuda/ops_cuda_gemv_tests --gtest_brief=1 --gtest_repeat=5 --gtest_filter='CudaGemv.Streamed*:CudaStreamedGemv.*' 2>&1 | grep -E "PASSED|FAILED|Failure|got" | sort | uniq -c | head -20
  timeout 120 $b/tests/engine/engine_model_test --gtest_brief=1 2>&1 | tail -3
  for m in llama-1b llama-8b; do
    timeout 120 $f bench model --synthetic $m --device cuda:0 --dtype bf16 -p 512 -n 128 -r 3 2>&1 | grep -v "^flagstone ops"
  done
} >"$o" 2>&1
