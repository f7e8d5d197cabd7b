#!/bin/bash
# Session 24's final GPU check: the engine's CUDA model tests (the q/k/v + attention kernel with
# its softmax states in the ring among them), then `flagstone bench model` on llama-1b and
# llama-8b with the copy peak. Output: $OUT/final24.txt.
o="$OUT/final24.txt"
b=build-gpu
f=$b/src/cli/flagstone
{
  echo "== date $(date -u +%FT%TZ), HEAD $(git rev-parse --short HEAD 2>/dev/null)"
  timeout 200 $b/tests/engine/engine_model_test --gtest_brief=1 --gtest_filter='*cuda*' 2>&1 | tail -12
  for m in llama-1b llama-8b; do
    timeout 120 $f bench model --synthetic $m --device cuda:0 --dtype bf16 -p 512 -n 128 -r 3 2>&1 | grep -v "^flagstone ops"
  done
} >"$o" 2>&1
