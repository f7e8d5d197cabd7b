#!/bin/bash
# GPU check of the streamed GEMV (src/ops/cuda/gemv_stream.cu: bulk copies into a shared-memory
# ring, the first copies before the PDL wait), which takes every one-row product of the decode
# step on sm_90: its tests against the float64 reference, its standalone timing per ring, chunk
# and blocks per SM beside the register GEMV and cuBLAS, the engine's cuda and persistent-step
# tests, then tg128 of llama-1b (A/B: FLAGSTONE_ENGINE_STREAM=0 is the step before it,
# FLAGSTONE_GEMV_STREAM_BPSM=2 two rings an SM for every product) and llama-8b.
# Output: $OUT/stream.txt.
o="$OUT/stream.txt"
b=build-gpu
f=$b/src/cli/flagstone
source "$(dirname "$0")/tg.inc"
{
  echo "== date $(date -u +%FT%TZ), HEAD $(git rev-parse --short HEAD 2>/dev/null)"
  echo "== gemv tests (streamed included)"
  timeout 30 $b/tests/ops/cuda/ops_cuda_gemv_tests --gtest_brief=1 2>&1 | tail -4
  echo "== engine tests on cuda (the step streams by default)"
  timeout 40 $b/tests/engine/engine_model_test --gtest_brief=1 --gtest_filter='*cuda*:*Persistent*' 2>&1 | tail -4
  echo "== streamed GEMV standalone (us per call in a graph; native and cuBLAS beside)"
  timeout 40 $b/tests/ops/cuda/ops_cuda_gemv_timing --rows 1 --streamed --shapes 3072x2048,2048x2048,16384x2048,2048x8192,128256x2048 2>&1 | tail -16
  echo "== llama-1b tg128 A/B"
  tg "default" "" llama-1b 3
  tg "FLAGSTONE_ENGINE_STREAM=0" "FLAGSTONE_ENGINE_STREAM=0" llama-1b 2
  tg "FLAGSTONE_GEMV_STREAM_BPSM=2" "FLAGSTONE_GEMV_STREAM_BPSM=2" llama-1b 2
  tg "default again" "" llama-1b 2
  tg "FLAGSTONE_ENGINE_STREAM=0 again" "FLAGSTONE_ENGINE_STREAM=0" llama-1b 2
  tg "fused q/k/v, o, down (FLAGSTONE_ENGINE_FUSED=1)" "FLAGSTONE_ENGINE_FUSED=1" llama-1b 2
  tg "every product fused (FLAGSTONE_ENGINE_FUSED=1 FLAGSTONE_ENGINE_FUSED_MAX=0)" "FLAGSTONE_ENGINE_FUSED=1 FLAGSTONE_ENGINE_FUSED_MAX=0" llama-1b 2
  tg "default at depth 4096" "" llama-1b 1 "-d 4096"
  tg "FLAGSTONE_ENGINE_STREAM=0 at depth 4096" "FLAGSTONE_ENGINE_STREAM=0" llama-1b 1 "-d 4096"
  echo "== profile, default"
  timeout 30 $f bench model --synthetic llama-1b --device cuda:0 --dtype bf16 -p 512 -n 128 -r 1 --profile 2>&1 | grep -v "^flagstone ops" | tail -22
  echo "== llama-8b"
  for i in 1 2; do
    tg "8b default (persistent)" "" llama-8b 2
    tg "8b op by op, streamed" "FLAGSTONE_ENGINE_PERSISTENT=0" llama-8b 2
  done
  tg "8b op by op, FLAGSTONE_ENGINE_STREAM=0" "FLAGSTONE_ENGINE_PERSISTENT=0 FLAGSTONE_ENGINE_STREAM=0" llama-8b 1
} >"$o" 2>&1
