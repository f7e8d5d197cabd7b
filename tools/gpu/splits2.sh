#!/bin/bash
# Session 24: fewest attention splits (FLAGSTONE_ENGINE_ATTN_SPLITS 1-3) at depth 512 and 4096.
# Output: $OUT/splits2.txt.
S=FLAGSTONE_ENGINE_ATTN_SPLITS
o=$OUT/splits2.txt
echo "== date $(date -u +%FT%TZ)" >"$o"
SWEEP_TO=$o FLAGSTONE_SWEEP=";$S=1;$S=2;$S=3;;$S=2;$S=3;$S=1" bash tools/gpu/sweep.sh
for s in 0 3 0 6; do
  env $S=$s timeout 60 build-gpu/src/cli/flagstone bench model --synthetic llama-1b --device cuda:0 --dtype bf16 -p 0 -n 128 -d 4096 -r 2 --no-peak 2>&1 | grep -E "tg128|rror" | awk -F'|' -v s=$s '{print "d4096 splits " s ": " $8}' >>"$o"
done
