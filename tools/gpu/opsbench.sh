#!/usr/bin/env bash
# GPU-window script of the operator benchmark (budget 30 s, most important first): PyTorch eager
# as the peer, `flagstone bench ops` on cuda:0 with the peer merged in (the memory-bound ops and
# attention), then the ops with tuning variants again under each FLAGSTONE_CUDA_VARIANT.
# Everything lands in $OUT/opsbench.txt.
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
OPS=add,mul,silu_and_mul,softmax,rms_norm,layer_norm,rotary,cross_entropy,attention
{
  echo "== opsbench $(date -u +%FT%TZ) $(git rev-parse --short HEAD 2>/dev/null)"
  echo "cuDNN: FLAGSTONE_CUDNN_PATH=${FLAGSTONE_CUDNN_PATH:-unset}"
  echo "== torch peer"
  timeout 12 python3 tools/bench/torch_ops_peer.py --device cuda --sizes 1024,8192 --ops $OPS \
    --max-seconds 0.3 --overhead-calls 200 > "$TMP/torch.json" 2> "$TMP/torch.err"
  echo "torch peer rc=$?"
  PEER=()
  [ -s "$TMP/torch.json" ] && python3 -c "import json,sys; json.load(open(sys.argv[1]))" "$TMP/torch.json" \
    && PEER=(--peer-json "$TMP/torch.json")
  echo "== flagstone bench ops -d cuda:0 --sizes 1024,8192 --max-seconds 0.3 --overhead-calls 200 --ops $OPS --peer-json torch.json"
  timeout 10 "$FS" bench ops -d cuda:0 --sizes 1024,8192 --max-seconds 0.3 --overhead-calls 200 \
    --ops $OPS "${PEER[@]}" 2> "$TMP/ours.err"
  echo "rc=$?"; tail -3 "$TMP/ours.err"
  for v in 0; do
    echo "== FLAGSTONE_CUDA_VARIANT=$v flagstone bench ops -d cuda:0 --sizes 8192 --max-seconds 0.2 --overhead-calls 0 --ops add,mul,softmax,rms_norm,layer_norm,rotary,cross_entropy --peer-json torch.json"
    FLAGSTONE_CUDA_VARIANT=$v timeout 4 "$FS" bench ops -d cuda:0 --sizes 8192 \
      --max-seconds 0.2 --overhead-calls 0 \
      --ops add,mul,softmax,rms_norm,layer_norm,rotary,cross_entropy "${PEER[@]}" 2>/dev/null |
      grep -E "^ [a-z]"
  done
  echo "== torch peer JSON"
  cat "$TMP/torch.json" 2>/dev/null | tr -d ' \n' | head -c 6000; echo
} > "$LOG" 2>&1
rm -rf "$TMP"
