#!/bin/bash
# GPU check of the inference engine (issue 5), most important first (a window's limit has been
# 95 s; a timeout kills the rest): the native decode attention tests (short live lengths in a
# large cache, repeated calls, a recorded call replayed over new lengths) and the engine's cuda
# tests (recorded step vs op by op, greedy steps fed back on the device, the fused rotary +
# attention candidate at head_dim 64 and 128 against the unfused step), then `flagstone bench
# model` on random-weight Llama-3.2-1B and Llama-3-8B shapes in bf16 with --profile (per-op
# device times and the recorded step's nodes), then tg128 with the candidate that is not the
# default yet:
#   FLAGSTONE_ENGINE_ROPE_ATTENTION=1 rotary + KV append + attention as one engine kernel
# and, if time is left, the previous versions of this session's changes (measured in session 11;
# see docs/performance.md): FLAGSTONE_DECODE_ATTENTION=split, FLAGSTONE_ENGINE_ARGMAX=ops,
# FLAGSTONE_CUDA_PDL=0, FLAGSTONE_BENCH_TG=sync.
# Output: $OUT/engine.txt.
o="$OUT/engine.txt"
b=build-gpu
f=$b/src/cli/flagstone
tg() {  # label, env assignment, model, repetitions: the tg128 row without peaks (-p 512 keeps
        # the cache capacity of the main runs, 513)
  echo "-- $1"
  env $2 timeout 40 $f bench model --synthetic "$3" --device cuda:0 --dtype bf16 -p 512 -n 128 -r "$4" --no-peak 2>&1 | grep -v "^flagstone ops" | grep -E "tg128|rror"
}
{
  echo "== date $(date -u +%FT%TZ), HEAD $(git rev-parse --short HEAD 2>/dev/null)"
  nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader 2>&1 | head -2
  echo "== decode attention and graph tests (ops_cuda_tests)"
  timeout 15 $b/tests/ops/cuda/ops_cuda_tests --gtest_brief=1 \
    --gtest_filter='CudaDecodeAttention.*:CudaGraph.*' 2>&1 | tail -12
  echo "== engine tests on cuda (recorded step, greedy on the device, fused candidate)"
  timeout 15 $b/tests/engine/engine_model_test --gtest_brief=1 --gtest_filter='*cuda*' 2>&1 | tail -12
  echo "== bench model llama-1b bf16"
  timeout 25 $f bench model --synthetic llama-1b --device cuda:0 --dtype bf16 -p 512 -n 128 -r 2 --profile 2>&1 | grep -v "^flagstone ops" | tail -30
  echo "== bench model llama-8b bf16"
  timeout 45 $f bench model --synthetic llama-8b --device cuda:0 --dtype bf16 -p 512 -n 128 -r 2 --profile 2>&1 | grep -v "^flagstone ops" | tail -30
  echo "== candidate: fused rotary + attention (tg128, no peaks; compare with the rows above)"
  tg "llama-1b fused" FLAGSTONE_ENGINE_ROPE_ATTENTION=1 llama-1b 2
  tg "llama-8b fused" FLAGSTONE_ENGINE_ROPE_ATTENTION=1 llama-8b 1
  echo "== previous versions (llama-1b tg128)"
  tg "previous decode kernel" FLAGSTONE_DECODE_ATTENTION=split llama-1b 2
  tg "ops argmax in the step" FLAGSTONE_ENGINE_ARGMAX=ops llama-1b 2
  tg "no PDL" FLAGSTONE_CUDA_PDL=0 llama-1b 2
  tg "step-by-step tg loop" FLAGSTONE_BENCH_TG=sync llama-1b 2
  echo "== llama-1b pp2048 (prefill target: 50% of the measured GEMM rate)"
  timeout 20 $f bench model --synthetic llama-1b --device cuda:0 --dtype bf16 -p 2048 -n 0 -r 2 2>&1 | grep -E "pp2048|rror"
} >"$o" 2>&1
