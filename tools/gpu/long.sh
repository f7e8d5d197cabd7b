#!/bin/bash
# GPU sweeps for the next session: one block of down an SM (FLAGSTONE_GEMV_LONG_BPSM=1, its ring
# and chunk by _LONG_RING_KIB / _LONG_CHUNK_KIB), so the next layer's q/k/v block (one an SM,
# ring by _SMALL_RING_KIB) fits beside it and fills its ring while down runs. GEMV and engine
# tests under the settings, then llama-1b / llama-8b tg128 against the default of the same
# window; then part of the weights kept in L2 between steps (below). Output: $OUT/long.txt.
o="$OUT/long.txt"
b=build-gpu
G=FLAGSTONE_GEMV
L="${G}_LONG_BPSM=1"
{
  echo "== date $(date -u +%FT%TZ), HEAD $(git rev-parse --short HEAD 2>/dev/null)"
  timeout 60 $b/tests/ops/cuda/ops_cuda_gemv_tests --gtest_brief=1 2>&1 | tail -3
  env $L ${G}_LONG_RING_KIB=128 timeout 60 $b/tests/engine/engine_model_test --gtest_brief=1 --gtest_filter='*cuda*' 2>&1 | tail -2
} >"$o" 2>&1
SWEEP_TO="$o" FLAGSTONE_SWEEP="${LONG_SWEEP:-;$L ${G}_LONG_RING_KIB=128;$L ${G}_LONG_RING_KIB=128 ${G}_LONG_CHUNK_KIB=8;$L ${G}_LONG_RING_KIB=96;$L ${G}_LONG_RING_KIB=96 ${G}_SMALL_RING_KIB=96;$L ${G}_LONG_RING_KIB=64;}" bash tools/gpu/sweep.sh
SWEEP_TO="$o" MODEL=llama-8b FLAGSTONE_SWEEP="${LONG_SWEEP8:-;$L ${G}_LONG_RING_KIB=128;$L ${G}_LONG_RING_KIB=96}" bash tools/gpu/sweep.sh
# Then part of the weights kept in L2 from one step to the next (FLAGSTONE_ENGINE_L2_KEEP_MIB: the
# first layers' q/k/v, or o, or both, streamed with evict_last), 1B and 8B.
K=FLAGSTONE_ENGINE_L2_KEEP
SWEEP_TO="$o" FLAGSTONE_SWEEP="${KEEP_SWEEP:-;${K}_MIB=12;${K}_MIB=24;${K}_MIB=36;${K}_MIB=48;${K}_MIB=40 $K=both;${K}_MIB=32 $K=o;}" bash tools/gpu/sweep.sh
SWEEP_TO="$o" MODEL=llama-8b FLAGSTONE_SWEEP="${KEEP_SWEEP8:-;${K}_MIB=24;${K}_MIB=40}" bash tools/gpu/sweep.sh
env ${K}_MIB=36 timeout 60 $b/tests/engine/engine_model_test --gtest_brief=1 --gtest_filter='*cuda*' 2>&1 | tail -2 >>"$o"
