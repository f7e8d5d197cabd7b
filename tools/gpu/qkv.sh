#!/bin/bash
# Session 23: the q/k/v product + rotary + attention in one kernel of clusters (qkv_attention.cu,
# asked for with FLAGSTONE_ENGINE_QKV_ATTENTION=1) against the two kernels (the default): the
# streamed GEMV's and the engine's CUDA tests, then llama-1b tg128 alternated, llama-8b once.
# Output: $OUT/qkv.txt.
o="$OUT/qkv.txt"
b=build-gpu
Q=FLAGSTONE_ENGINE_QKV_ATTENTION=1
{
  echo "== date $(date -u +%FT%TZ), HEAD $(git rev-parse --short HEAD 2>/dev/null)"
  timeout 60 $b/tests/ops/cuda/ops_cuda_gemv_tests --gtest_brief=1 2>&1 | tail -3
  timeout 200 $b/tests/engine/engine_model_test --gtest_brief=1 --gtest_filter="${QKV_TESTS:-*cuda*}" 2>&1 | tail -40
  env $Q $b/src/cli/flagstone bench model --synthetic llama-1b --device cuda:0 --dtype bf16 -p 16 -n 16 -r 1 --no-peak 2>&1 | grep -i 'q/k/v'
} >"$o" 2>&1
SWEEP_TO="$o" FLAGSTONE_SWEEP="${QKV_SWEEP:-;$Q;;$Q}" bash tools/gpu/sweep.sh
SWEEP_TO="$o" MODEL=llama-8b FLAGSTONE_SWEEP=";" bash tools/gpu/sweep.sh
f=build-gpu/src/cli/flagstone
env $Q timeout 60 $f bench model --synthetic llama-1b --device cuda:0 --dtype bf16 -p 512 -n 128 -r 1 --no-peak --profile 2>&1 | grep -iE "qkv|rope_att|linear \[3072" | head -8 >>"$o"
