#!/bin/bash
# GPU check of the decode step after session 21's changes (fused five-kernel step by default on
# sm_90, the gate/up product's silu epilogue, 4 KiB chunks): tests,
# tg128 of llama-1b and llama-8b with the measured copy peak (%bw) and A/B settings.
# Output: $OUT/fused_step.txt.
o="$OUT/fused_step.txt"
b=build-gpu
f=$b/src/cli/flagstone
{
  echo "== date $(date -u +%FT%TZ)"
  echo "== gemv tests"
  timeout 40 $b/tests/ops/cuda/ops_cuda_gemv_tests --gtest_brief=1 2>&1 | tail -4
  echo "== engine model tests (every device)"
  timeout 120 $b/tests/engine/engine_model_test --gtest_brief=1 2>&1 | grep -vE "Skipped|is CUDA's|needs sm_90" | tail -6
  echo "== llama-1b and llama-8b tg128 with the copy peak"
  for m in llama-1b llama-8b; do
    timeout 120 $f bench model --synthetic $m --device cuda:0 --dtype bf16 -p 512 -n 128 -r 3 2>&1 | grep -E "tg128|pp512|peak|rror" | grep -v "^flagstone ops"
  done
} >"$o" 2>&1
SWEEP_TO="$o" FLAGSTONE_SWEEP=";FLAGSTONE_GEMV_RING_KIB=96;FLAGSTONE_ENGINE_FUSED=0;FLAGSTONE_ENGINE_SILU=down;FLAGSTONE_ENGINE_STREAM=0;" \
  bash tools/gpu/sweep.sh
SWEEP_TO="$o" MODEL=llama-8b FLAGSTONE_SWEEP=";FLAGSTONE_ENGINE_FUSED=0" bash tools/gpu/sweep.sh
{
  echo "== depth 4096"
  for e in "" "FLAGSTONE_ENGINE_FUSED=0"; do
    echo "-- $e"; env $e timeout 60 $f bench model --synthetic llama-1b --device cuda:0 --dtype bf16 -p 0 -n 128 -d 4096 -r 1 --no-peak 2>&1 | grep tg128
  done
} >>"$o" 2>&1
