#!/bin/bash
# GPU check of the fused decode step on the streamed GEMV (FLAGSTONE_ENGINE_FUSED=1 with
# FLAGSTONE_ENGINE_FUSED_MAX=0: five kernels a layer, the activation as the gate/up product's silu
# epilogue): the GEMV and engine tests, then llama-1b tg128 A/B against the default eight-kernel
# step, the activation in front of down (FLAGSTONE_ENGINE_SILU=down),
# and ring size, the profile, and llama-8b. Output: $OUT/fused.txt.
o="$OUT/fused.txt"
b=build-gpu
f=$b/src/cli/flagstone
F="FLAGSTONE_ENGINE_FUSED=1 FLAGSTONE_ENGINE_FUSED_MAX=0"
source "$(dirname "$0")/tg.inc"
{
  echo "== date $(date -u +%FT%TZ), HEAD $(git rev-parse --short HEAD 2>/dev/null)"
  echo "== gemv tests"
  timeout 40 $b/tests/ops/cuda/ops_cuda_gemv_tests --gtest_brief=1 2>&1 | tail -6
  echo "== engine tests on cuda"
  timeout 60 $b/tests/engine/engine_model_test --gtest_brief=1 --gtest_filter='*cuda*:*Persistent*:*Stream*:*Fused*' 2>&1 | tail -6
  echo "== llama-1b tg128 A/B"
  for i in 1 2; do
    tg "default (8 kernels a layer)" "" llama-1b 2
    tg "fused, silu after gate/up" "$F" llama-1b 2
    tg "fused, silu before down" "$F FLAGSTONE_ENGINE_SILU=down" llama-1b 2
  done
  tg "fused + ring 32" "$F FLAGSTONE_GEMV_RING_KIB=32" llama-1b 2
  tg "fused + ring 48" "$F FLAGSTONE_GEMV_RING_KIB=48" llama-1b 2
  tg "fused + ring 96" "$F FLAGSTONE_GEMV_RING_KIB=96" llama-1b 2
  tg "fused + bpsm 1" "$F FLAGSTONE_GEMV_STREAM_BPSM=1" llama-1b 2
  tg "fused + bpsm 2" "$F FLAGSTONE_GEMV_STREAM_BPSM=2" llama-1b 2
  tg "fused + chunk 4" "$F FLAGSTONE_GEMV_CHUNK_KIB=4" llama-1b 2
  tg "fused at depth 4096" "$F" llama-1b 1 "-d 4096"
  tg "default at depth 4096" "" llama-1b 1 "-d 4096"
  echo "== profile, fused"
  env $F timeout 30 $f bench model --synthetic llama-1b --device cuda:0 --dtype bf16 -p 512 -n 128 -r 1 --profile 2>&1 | grep -v "^flagstone ops" | tail -16
  echo "== llama-8b"
  tg "8b default" "" llama-8b 2
  tg "8b fused" "$F" llama-8b 2
} >"$o" 2>&1
