#!/bin/bash
# Session 24: the fused attention's split count (FLAGSTONE_ENGINE_ATTN_SPLITS; fewer splits leave
# SMs free for the next products' blocks), llama-1b and llama-8b tg128. Output: $OUT/splits.txt.
o="$OUT/splits.txt"
S=FLAGSTONE_ENGINE_ATTN_SPLITS
echo "== date $(date -u +%FT%TZ)" >"$o"
SWEEP_TO="$o" FLAGSTONE_SWEEP=";$S=4;$S=6;$S=8;$S=16;;$S=3;$S=5;$S=6" bash tools/gpu/sweep.sh
SWEEP_TO="$o" MODEL=llama-8b FLAGSTONE_SWEEP=";$S=8;$S=16;" bash tools/gpu/sweep.sh
