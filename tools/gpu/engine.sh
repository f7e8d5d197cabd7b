#!/bin/bash
# GPU check of the inference engine (issue 5): the engine and runtime-graph tests on cuda:0
# (logits vs the float64 reference, the recorded decode step vs op by op, GGUF, greedy), then
# `flagstone bench model` on random-weight Llama-3.2-1B and Llama-3-8B shapes in bf16, the decode
# step replayed as a CUDA graph and op by op (--no-graph), with the device's copy and GEMM peaks
# measured in the same run; the transformers peer (engine_peer.py) only in the last window
# (after 12:50 UTC, where --no-graph runs are left out to fit). Output: $OUT/engine.txt.
# Budget: 110 s in the last window, 150 s before.
o="$OUT/engine.txt"
b=build-gpu
f=$b/src/cli/flagstone
{
  echo "== date $(date -u +%FT%TZ), HEAD $(git rev-parse --short HEAD 2>/dev/null)"
  nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader 2>&1 | head -2
  echo "== runtime graph tests and the engine's device decode step on cuda"
  timeout 20 $b/tests/runtime/runtime_tests --gtest_brief=1 --gtest_filter='*Graph*:*Pool*' 2>&1 | tail -6
  timeout 40 $b/tests/engine/engine_model_test --gtest_brief=1 --gtest_filter='*cuda*' 2>&1 | tail -25
  echo "== engine_generate_test"
  timeout 20 $b/tests/engine/engine_generate_test --gtest_brief=1 2>&1 | tail -8
  echo "== bench model llama-1b bf16: graph (default), then --no-graph"
  timeout 30 $f bench model --synthetic llama-1b --device cuda:0 --dtype bf16 -p 512 -n 128 -r 3 --profile 2>&1 | grep -v "^flagstone ops" | tail -40
  late=$([ "$(date -u +%H%M)" -ge 1250 ] && echo 1)
  [ -z "$late" ] && timeout 15 $f bench model --synthetic llama-1b --device cuda:0 --dtype bf16 -p 0 -n 128 -r 3 --no-graph --no-peak 2>&1 | grep -v "^flagstone ops" | tail -4
  echo "== bench model llama-8b bf16: graph (default), then --no-graph"
  timeout 45 $f bench model --synthetic llama-8b --device cuda:0 --dtype bf16 -p 512 -n 128 -r 3 --profile 2>&1 | grep -v "^flagstone ops" | tail -40
  if [ -n "$late" ]; then
    echo "== peer: transformers LlamaForCausalLM, Llama-3.2-1B shape, bf16, random weights"
    timeout 40 python3 -u tools/gpu/engine_peer.py 2>&1 | tail -6
  else
    timeout 35 $f bench model --synthetic llama-8b --device cuda:0 --dtype bf16 -p 0 -n 128 -r 2 --no-graph --no-peak 2>&1 | grep -v "^flagstone ops" | tail -4
  fi
} >"$o" 2>&1
