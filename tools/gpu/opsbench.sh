#!/usr/bin/env bash
# GPU-window script of the operator benchmark (budget 50 s, most important first): PyTorch eager
# as the peer, `flagstone bench ops` on cuda:0 with the peer merged in (the memory-bound ops and
# attention at 1024/8192 tokens, the memory-bound ops again at 32768, where the copy baseline of
# the same bytes is itself near peak), the same ops in f16 and f32 beside torch in that dtype, then
# candidate kernels under FLAGSTONE_CUDA_VARIANT.
# Everything lands in $OUT/opsbench.txt. OPSBENCH_VARIANTS overrides the variant list.
set -u
OUT=${OUT:-/tmp/opsbench-out}
mkdir -p "$OUT"
LOG="$OUT/opsbench.txt"
FS=build-gpu/src/cli/flagstone
TMP=$(mktemp -d)
# cuDNN 9 (and the NVRTC its engines compile with) from PyTorch's wheels, as tools/gpu/opscuda.sh
# finds it (the loader's own cuDNN may differ).
nv=$(python3 -c 'import nvidia, os; print(os.path.dirname(nvidia.__path__[0]))' 2>/dev/null)
libs=$(ls -d "$nv"/nvidia/*/lib "$nv"/nvidia/cu*/lib 2>/dev/null | sort -u | tr '\n' ':')
export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:-}"
graph=$(find "$nv/nvidia" -name 'libcudnn_graph.so.9*' 2>/dev/null | head -1)
[ -n "$graph" ] && export FLAGSTONE_CUDNN_PATH="$(dirname "$graph")"
MEM=add,mul,silu_and_mul,softmax,rms_norm,layer_norm,rotary,cross_entropy
OPS=$MEM,attention
ROWS="^ [a-z]"
{
  echo "== opsbench $(date -u +%FT%TZ) $(git rev-parse --short HEAD 2>/dev/null)"
  echo "cuDNN: FLAGSTONE_CUDNN_PATH=${FLAGSTONE_CUDNN_PATH:-unset}"
  echo "== torch peer (bf16; 1024,8192 with attention; 32768 memory-bound ops)"
  timeout 12 python3 tools/bench/torch_ops_peer.py --device cuda --sizes 1024,8192 --ops $OPS \
    --max-seconds 0.3 --overhead-calls 200 > "$TMP/t1.json" 2> "$TMP/torch.err"
  echo "torch peer rc=$?"
  timeout 8 python3 tools/bench/torch_ops_peer.py --device cuda --sizes 32768 --ops $MEM \
    --max-seconds 0.3 --overhead-calls 0 > "$TMP/t2.json" 2>> "$TMP/torch.err"
  echo "torch peer 32768 rc=$?"
  # One peer file: the rows of both runs (the overhead rows come from the first).
  python3 - "$TMP/t1.json" "$TMP/t2.json" "$TMP/torch.json" <<'EOF'
import json, sys
docs = []
for f in sys.argv[1:3]:
    try:
        docs.append(json.load(open(f)))
    except Exception:
        pass
if docs:
    out = docs[0]
    for d in docs[1:]:
        out["rows"] += d["rows"]
    json.dump(out, open(sys.argv[3], "w"))
EOF
  PEER=()
  [ -s "$TMP/torch.json" ] && PEER=(--peer-json "$TMP/torch.json")
  echo "== flagstone bench ops -d cuda:0 --sizes 1024,8192 --max-seconds 0.3 --overhead-calls 200 --ops $OPS --peer-json torch.json"
  timeout 12 "$FS" bench ops -d cuda:0 --sizes 1024,8192 --max-seconds 0.3 --overhead-calls 200 \
    --ops $OPS "${PEER[@]}" 2> "$TMP/ours.err"
  echo "rc=$?"; tail -3 "$TMP/ours.err"
  echo "== flagstone bench ops -d cuda:0 --sizes 32768 --max-seconds 0.3 --overhead-calls 0 --ops $MEM --peer-json torch.json"
  timeout 8 "$FS" bench ops -d cuda:0 --sizes 32768 --max-seconds 0.3 --overhead-calls 0 \
    --ops $MEM "${PEER[@]}" 2>/dev/null | grep -E "$ROWS"
  echo "rc=$?"
  # The defaults in f16 and f32 once, each beside torch in the same dtype.
  for dt in f16 f32; do
    timeout 7 python3 tools/bench/torch_ops_peer.py --device cuda --dtype $dt --sizes 8192 \
      --ops $MEM --max-seconds 0.2 --overhead-calls 0 > "$TMP/t_$dt.json" 2>> "$TMP/torch.err"
    P2=()
    [ -s "$TMP/t_$dt.json" ] && P2=(--peer-json "$TMP/t_$dt.json")
    echo "== flagstone bench ops -d cuda:0 --dtype $dt --sizes 8192 --max-seconds 0.2 --overhead-calls 0 --ops $MEM --peer-json torch_$dt.json"
    timeout 6 "$FS" bench ops -d cuda:0 --dtype $dt --sizes 8192 --max-seconds 0.2 \
      --overhead-calls 0 --ops $MEM "${P2[@]}" 2>/dev/null | grep -E "$ROWS"
  done
  # Candidates at 8192 tokens: each op reads its own meaning of the variant number (the
  # launchers in src/ops/cuda name them).
  for v in ${OPSBENCH_VARIANTS:-5 9}; do
    ops=layer_norm,rms_norm
    echo "== FLAGSTONE_CUDA_VARIANT=$v flagstone bench ops -d cuda:0 --sizes 8192 --max-seconds 0.15 --overhead-calls 0 --ops $ops --peer-json torch.json"
    FLAGSTONE_CUDA_VARIANT=$v timeout 5 "$FS" bench ops -d cuda:0 --sizes 8192 \
      --max-seconds 0.15 --overhead-calls 0 --ops $ops "${PEER[@]}" 2>/dev/null | grep -E "$ROWS"
  done
  echo "== torch peer JSON"
  tr -d ' \n' < "$TMP/torch.json" 2>/dev/null | head -c 8000; echo
} > "$LOG" 2>&1
rm -rf "$TMP"
