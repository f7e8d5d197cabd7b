#!/bin/bash
# GPU check of the persistent decode step (FLAGSTONE_ENGINE_PERSISTENT=1; issue 5's 1B decode
# target): its tests against the op-by-op step and the float64 reference, then llama-1b tg128
# in alternating pairs (op-by-op, persistent) in one window, then llama-8b once each.
# Output: $OUT/persistent.txt.
o="$OUT/persistent.txt"
b=build-gpu
f=$b/src/cli/flagstone
tg() {  # label, env assignment, model, repetitions
  echo "-- $1"
  env $2 timeout 60 $f bench model --synthetic "$3" --device cuda:0 --dtype bf16 -p 512 -n 128 -r "$4" --no-peak 2>&1 | grep -v "^flagstone ops" | grep -E "tg128|pp512|rror|ersistent"
}
{
  echo "== date $(date -u +%FT%TZ), HEAD $(git rev-parse --short HEAD 2>/dev/null)"
  nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader 2>&1 | head -2
  echo "== persistent step tests on cuda"
  timeout 60 $b/tests/engine/engine_model_test --gtest_brief=1 --gtest_filter='*Persistent*cuda*' 2>&1 | tail -30
  echo "== llama-1b tg128 pairs"
  for i in 1 2; do
    tg "op by op" FLAGSTONE_ENGINE_PERSISTENT=0 llama-1b 2
    tg "persistent" FLAGSTONE_ENGINE_PERSISTENT=1 llama-1b 2
  done
  echo "== persistent profile"
  FLAGSTONE_ENGINE_PERSISTENT=1 timeout 30 $f bench model --synthetic llama-1b --device cuda:0 --dtype bf16 -p 512 -n 128 -r 1 --profile 2>&1 | grep -v "^flagstone ops" | tail -20
  echo "== engine tests on cuda (all)"
  timeout 40 $b/tests/engine/engine_model_test --gtest_brief=1 --gtest_filter='*cuda*' 2>&1 | tail -8
  echo "== llama-8b"
  tg "persistent" FLAGSTONE_ENGINE_PERSISTENT=1 llama-8b 1
  tg "op by op" FLAGSTONE_ENGINE_PERSISTENT=0 llama-8b 1
} >"$o" 2>&1
