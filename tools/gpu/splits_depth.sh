#!/bin/bash
# The fused attention's split count (FLAGSTONE_ENGINE_ATTN_SPLITS; 0 = the rule's) over cache
# depths, llama-1b tg128: for a split rule that helps at every depth (session 24 found 2 splits
# 1.006x at depth 512 but 3-6 far slower at 4096). Output: $OUT/splits_depth.txt.
S=FLAGSTONE_ENGINE_ATTN_SPLITS
o=$OUT/splits_depth.txt
echo "== date $(date -u +%FT%TZ)" >"$o"
for d in ${DEPTHS:-128 512 1024 2048 4096}; do
  for s in ${SPLITS:-0 2 3 4 6 8 12 16 0}; do
    env $S=$s timeout 60 build-gpu/src/cli/flagstone bench model --synthetic ${MODEL:-llama-1b} --device cuda:0 --dtype bf16 -p 0 -n 128 -d $d -r 2 --no-peak 2>&1 | grep -E "tg128|rror" | awk -F'|' -v s=$s -v d=$d '{print "depth " d " splits " s ": " $8}' >>"$o"
  done
done
