#!/bin/bash
# Session 25's last check: `flagstone bench model` with the peaks measured after the tests,
# llama-1b twice and llama-8b, then llama-1b without the
# peaks. Output: $OUT/final25b.txt.
o="$OUT/final25b.txt"
f=build-gpu/src/cli/flagstone
{
  echo "== date $(date -u +%FT%TZ)"
  for m in llama-1b llama-1b llama-8b; do
    timeout 120 $f bench model --synthetic $m --device cuda:0 --dtype bf16 -p 512 -n 128 -r 3 2>&1 | grep -v "^flagstone ops"
  done
  # Without the peaks, for comparison (the tests themselves should not change).
  timeout 120 $f bench model --synthetic llama-1b --device cuda:0 --dtype bf16 -p 512 -n 128 -r 3 --no-peak 2>&1 | grep tg128
} >"$o" 2>&1
