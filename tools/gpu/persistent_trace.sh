#!/bin/bash
# Where the persistent decode step's time goes (block 0's trace at position 100), then A/B.
o="$OUT/persistent_trace.txt"
f=build-gpu/src/cli/flagstone
{
  for cfg in "2 0" "3 0" "4 0"; do
    set -- $cfg
    echo "== llama-1b slots $1 flags $2"
    FLAGSTONE_MEGA_FLAGS=$2 FLAGSTONE_MEGA_SLOTS=$1 FLAGSTONE_ENGINE_PERSISTENT=1 FLAGSTONE_ENGINE_PERSISTENT_TRACE=100 timeout 60 $f bench model --synthetic llama-1b --device cuda:0 --dtype bf16 -p 512 -n 128 -r 1 --no-peak 2>&1 | grep -E "tg128|trace|rror" | head -4
  done
  echo "== op-by-op / persistent pairs"
  for i in 1 2; do
    for v in 0 1; do FLAGSTONE_ENGINE_PERSISTENT=$v timeout 60 $f bench model --synthetic llama-1b --device cuda:0 --dtype bf16 -p 512 -n 128 -r 2 --no-peak 2>&1 | grep -E "tg128|rror"; done
  done
  echo "== 8b persistent trace"
  FLAGSTONE_ENGINE_PERSISTENT=1 FLAGSTONE_ENGINE_PERSISTENT_TRACE=100 timeout 60 $f bench model --synthetic llama-8b --device cuda:0 --dtype bf16 -p 512 -n 128 -r 1 --no-peak 2>&1 | grep -E "tg128|trace|rror" | head -4
  echo "== persistent tests"
  timeout 60 build-gpu/tests/engine/engine_model_test --gtest_brief=1 --gtest_filter='*Persistent*cuda*' 2>&1 | tail -5
} >"$o" 2>&1
