#!/usr/bin/env bash
# GPU-window script (budget 40 s): the memory-bound ops at the large size (32768 tokens: 256 MiB
# per hidden-4096 tensor in 16-bit) in f16 and f32, each beside PyTorch eager in the same dtype in
# the same run; tools/gpu/opsbench.sh covers bf16 at this size. Output: $OUT/opslarge.txt.
set -u
OUT=${OUT:-/tmp/opslarge-out}
mkdir -p "$OUT"
FS=build-gpu/src/cli/flagstone
TMP=$(mktemp -d)
MEM=add,mul,silu_and_mul,softmax,rms_norm,layer_norm,rotary,cross_entropy
{
  echo "== opslarge $(date -u +%FT%TZ)"
  for dt in f16 f32; do
    timeout 12 python3 tools/bench/torch_ops_peer.py --device cuda --dtype $dt --sizes 32768 \
      --ops $MEM --max-seconds 0.3 --overhead-calls 0 >"$TMP/t_$dt.json" 2>>"$TMP/torch.err"
    echo "torch peer $dt rc=$?"
    P=()
    [ -s "$TMP/t_$dt.json" ] && P=(--peer-json "$TMP/t_$dt.json")
    echo "== flagstone bench ops -d cuda:0 --dtype $dt --sizes 32768 --max-seconds 0.3 --overhead-calls 0 --ops $MEM --peer-json torch_$dt.json"
    timeout 10 "$FS" bench ops -d cuda:0 --dtype $dt --sizes 32768 --max-seconds 0.3 \
      --overhead-calls 0 --ops $MEM "${P[@]}" 2>&1 | grep -vE "^flagstone ops"
  done
  tail -3 "$TMP/torch.err"
} >"$OUT/opslarge.txt" 2>&1
