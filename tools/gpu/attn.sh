#!/bin/bash
# GPU check of decode attention (issue 5; budget 60 s, most important first): the decode
# attention and graph tests, the engine's cuda tests (fused rotary + attention against the
# unfused step), then each call's time inside a recorded graph (ops_cuda_decode_attention_timing:
# Llama-3.2-1B 32/8 x 64 and Llama-3-8B 32/8 x 128 shapes over 1 .. 32768 keys, the op's split
# plan and forced split counts; the previous kernel and no-PDL in the same run), then llama-1b
# tg128 with the fused kernel on and off. Output: $OUT/attn.txt.
o="$OUT/attn.txt"
b=build-gpu
f=$b/src/cli/flagstone
t=$b/tests/ops/cuda/ops_cuda_decode_attention_timing
tg() {  # label, env assignment, model
  echo "-- $1"
  env $2 timeout 20 $f bench model --synthetic "$3" --device cuda:0 --dtype bf16 -p 512 -n 128 \
    -r 2 --no-peak 2>&1 | grep -v "^flagstone ops" | grep -E "tg128|rror"
}
{
  echo "== attn $(date -u +%FT%TZ), HEAD $(git rev-parse --short HEAD 2>/dev/null)"
  nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader 2>&1 | head -1
  echo "== ops_cuda_tests CudaDecodeAttention.*:CudaGraph.*"
  timeout 15 $b/tests/ops/cuda/ops_cuda_tests --gtest_brief=1 \
    --gtest_filter='CudaDecodeAttention.*:CudaGraph.*' 2>&1 | tail -15
  echo "== engine_model_test *cuda*"
  timeout 12 $b/tests/engine/engine_model_test --gtest_brief=1 --gtest_filter='*cuda*' 2>&1 |
    tail -12
  echo "== decode attention per call in a graph (default; forced split counts)"
  timeout 12 $t --splits 2>&1
  echo "== previous kernel (FLAGSTONE_DECODE_ATTENTION=split)"
  FLAGSTONE_DECODE_ATTENTION=split timeout 6 $t --lengths 1,64,640,4096 2>&1
  echo "== no PDL (FLAGSTONE_CUDA_PDL=0)"
  FLAGSTONE_CUDA_PDL=0 timeout 6 $t --lengths 1,64,640,4096 2>&1
  echo "== llama-1b tg128: fused rotary + attention on and off"
  tg "fused (FLAGSTONE_ENGINE_ROPE_ATTENTION=1)" FLAGSTONE_ENGINE_ROPE_ATTENTION=1 llama-1b
  tg "unfused" FLAGSTONE_ENGINE_ROPE_ATTENTION=0 llama-1b
} >"$o" 2>&1
