#!/bin/bash
# GPU check of decode attention (issue 5; the lead's limit is 50 s, most important first): the
# decode attention and graph tests (engine.sh runs the engine's cuda tests, which check the fused
# rotary + attention step against the unfused one), each call's time inside a recorded graph
# (ops_cuda_decode_attention_timing: Llama-3.2-1B 32/8 x 64 and Llama-3-8B 32/8 x 128 shapes over
# 1 .. 32768 keys, the op's split plan and some forced split counts), then llama-1b tg128 with the
# fused rotary + attention kernel (the default) and without (FLAGSTONE_ENGINE_ROPE_ATTENTION=0).
# Output: $OUT/attn.txt.
o="$OUT/attn.txt"
b=build-gpu
f=$b/src/cli/flagstone
t=$b/tests/ops/cuda/ops_cuda_decode_attention_timing
tg() {  # label, env assignment, model
  echo "-- $1"
  env $2 timeout 12 $f bench model --synthetic "$3" --device cuda:0 --dtype bf16 -p 512 -n 128 \
    -r 2 --no-peak 2>&1 | grep -v "^flagstone ops" | grep -E "tg128|rror"
}
{
  echo "== attn $(date -u +%FT%TZ)"
  nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader 2>&1 | head -1
  echo "== ops_cuda_tests CudaDecodeAttention.*:CudaGraph.*"
  timeout 11 $b/tests/ops/cuda/ops_cuda_tests --gtest_filter='CudaDecodeAttention.*:CudaGraph.*' \
    2>&1 | grep -E "^\[ +(OK|FAILED|PASSED|SKIPPED) |Failure|error|diff|Expected|Which" | head -30
  echo "== decode attention per call in a graph (op's plan; forced split counts)"
  timeout 16 $t --lengths 1,64,640,4096,32768 --splits 16,33 2>&1
  echo "== llama-1b tg128: fused rotary + attention (default) and unfused"
  tg "default (fused rotary + attention)" FLAGSTONE_ENGINE_ROPE_ATTENTION=1 llama-1b
  tg "FLAGSTONE_ENGINE_ROPE_ATTENTION=0" FLAGSTONE_ENGINE_ROPE_ATTENTION=0 llama-1b
} >"$o" 2>&1
