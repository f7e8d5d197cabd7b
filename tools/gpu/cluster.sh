#!/bin/bash
# Session 23: the fused rotary + attention kernel's splits merged through a thread-block cluster
# (the default on sm_90) against the global workspace merge (FLAGSTONE_ENGINE_ATTN_CLUSTER=0):
# the engine's CUDA model tests, then llama-1b / llama-8b tg128 with and without, alternated.
# Output: $OUT/cluster.txt.
o="$OUT/cluster.txt"
b=build-gpu
{
  echo "== date $(date -u +%FT%TZ), HEAD $(git rev-parse --short HEAD 2>/dev/null)"
  timeout 120 $b/tests/engine/engine_model_test --gtest_brief=1 --gtest_filter='*cuda*' 2>&1 | tail -30
} >"$o" 2>&1
C=FLAGSTONE_ENGINE_ATTN_CLUSTER=0
SWEEP_TO="$o" FLAGSTONE_SWEEP="${CLUSTER_SWEEP:-;$C;;$C;;$C}" bash tools/gpu/sweep.sh
SWEEP_TO="$o" MODEL=llama-8b FLAGSTONE_SWEEP="${CLUSTER_SWEEP8:-;$C}" bash tools/gpu/sweep.sh
