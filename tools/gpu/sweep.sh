#!/bin/bash
# tg128 of a synthetic model (MODEL, default llama-1b) over decode-step settings (the streamed
# GEMV's chunk, ring, blocks per SM, L2 prefetch, the fused step): FLAGSTONE_SWEEP lists the
# environment assignments of each run, one run per ';'. Output: $OUT/sweep.txt, or appended to
# SWEEP_TO (another script's output file).
o="${SWEEP_TO:-$OUT/sweep.txt}"
[ -n "${SWEEP_TO:-}" ] || rm -f "$o"
f=build-gpu/src/cli/flagstone
{
  echo "== date $(date -u +%FT%TZ)"
  IFS=';' read -ra settings <<<"${FLAGSTONE_SWEEP:-}"
  for s in "${settings[@]}"; do
    env $s timeout 60 $f bench model --synthetic ${MODEL:-llama-1b} --device cuda:0 --dtype bf16 -p 512 -n 128 -r 2 --no-peak >/tmp/tg.log 2>&1
    echo "$s: $(grep -E 'tg128|rror' /tmp/tg.log | grep -v '^flagstone ops' | awk -F'|' '{print $8}' | head -1)"
  done
} >>"$o" 2>&1
