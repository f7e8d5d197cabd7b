#!/bin/bash
# GPU check of the inference engine (issue 5): the native decode attention tests (short live
# lengths in a large cache, repeated calls, a recorded call replayed over new lengths), the
# engine and runtime-graph tests on cuda:0 (logits vs the float64 reference, the recorded decode
# step vs op by op, greedy), then `flagstone bench model` on random-weight Llama-3.2-1B and
# Llama-3-8B shapes in bf16 with --profile (per-op device times and what the recorded step holds),
# the device's copy and GEMM peaks measured in the same run; the transformers peer
# (engine_peer.py) only in the last window (ENGINE_PEER=1, or after 16:00 UTC).
# Output: $OUT/engine.txt. Budget: 150 s.
o="$OUT/engine.txt"
b=build-gpu
f=$b/src/cli/flagstone
{
  echo "== date $(date -u +%FT%TZ), HEAD $(git rev-parse --short HEAD 2>/dev/null)"
  nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader 2>&1 | head -2
  echo "== decode attention and graph tests (ops_cuda_tests)"
  timeout 25 $b/tests/ops/cuda/ops_cuda_tests --gtest_brief=1 \
    --gtest_filter='CudaDecodeAttention.*:CudaGraph.*' 2>&1 | tail -12
  echo "== runtime graph tests and the engine's device decode step on cuda"
  timeout 15 $b/tests/runtime/runtime_tests --gtest_brief=1 --gtest_filter='*Graph*:*Pool*' 2>&1 | tail -4
  timeout 30 $b/tests/engine/engine_model_test --gtest_brief=1 --gtest_filter='*cuda*:*Cuda*:*Graph*' 2>&1 | tail -15
  echo "== engine_generate_test"
  timeout 15 $b/tests/engine/engine_generate_test --gtest_brief=1 2>&1 | tail -6
  echo "== bench model llama-1b bf16 (decode step recorded as a graph)"
  timeout 30 $f bench model --synthetic llama-1b --device cuda:0 --dtype bf16 -p 512 -n 128 -r 3 --profile 2>&1 | grep -v "^flagstone ops" | tail -30
  echo "== llama-1b tg128 without programmatic dependent launch (FLAGSTONE_CUDA_PDL=0), same build"
  FLAGSTONE_CUDA_PDL=0 timeout 20 $f bench model --synthetic llama-1b --device cuda:0 --dtype bf16 -p 0 -n 128 -r 3 --no-peak 2>&1 | grep -v "^flagstone ops" | grep "tg128"
  echo "== bench model llama-8b bf16"
  timeout 50 $f bench model --synthetic llama-8b --device cuda:0 --dtype bf16 -p 512 -n 128 -r 2 --profile 2>&1 | grep -v "^flagstone ops" | tail -30
  if [ -n "$ENGINE_PEER" ] || [ "$(date -u +%H%M)" -ge 1600 ]; then
    echo "== peer: transformers LlamaForCausalLM, Llama-3.2-1B shape, bf16, random weights"
    timeout 40 python3 -u tools/gpu/engine_peer.py 2>&1 | tail -6
  fi
} >"$o" 2>&1
