#!/usr/bin/env bash
# GPU-window script of the operator benchmark (owner: opsbench): the bench library's tests on
# every device, PyTorch eager as the peer, and `flagstone bench ops` on cuda:0 with the peer
# merged in, and the memory-bound ops again under the tuning variants. Everything lands in
# $OUT/opsbench.txt. Budget: 60 s (about 25 s on an H200).
set -u
OUT=${OUT:-/tmp/opsbench-out}
mkdir -p "$OUT"
LOG="$OUT/opsbench.txt"
FS=build-gpu/src/cli/flagstone
TMP=$(mktemp -d)
mkdir -p /tmp/icd && echo libnvidia-opencl.so.1 > /tmp/icd/nvidia.icd
export OCL_ICD_VENDORS=/tmp/icd
# cuDNN 9 (and the NVRTC its engines compile with) from PyTorch's wheels, as tools/gpu/opscuda.sh
# finds it (the loader's own cuDNN may differ).
nv=$(python3 -c 'import nvidia, os; print(os.path.dirname(nvidia.__path__[0]))' 2>/dev/null)
libs=$(ls -d "$nv"/nvidia/*/lib "$nv"/nvidia/cu*/lib 2>/dev/null | sort -u | tr '\n' ':')
export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:-}"
graph=$(find "$nv/nvidia" -name 'libcudnn_graph.so.9*' 2>/dev/null | head -1)
[ -n "$graph" ] && export FLAGSTONE_CUDNN_PATH="$(dirname "$graph")"
{
  echo "== opsbench $(date -u +%FT%TZ) $(git rev-parse --short HEAD 2>/dev/null)"
  echo "cuDNN: FLAGSTONE_CUDNN_PATH=${FLAGSTONE_CUDNN_PATH:-unset}"
  nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv,noheader
  echo "== bench_ops_test (every device)"
  timeout 40 build-gpu/tests/bench/bench_ops_test --gtest_brief=1 2>&1 | tail -30
  echo "== flagstone ops (what dispatch picks on cuda:0 for the benchmarked ops)"
  timeout 10 "$FS" ops 2>&1 | grep -E "^(op|add|mul|silu_and_mul|softmax|rms_norm|layer_norm|rotary_embedding|cross_entropy|mm|linear|scaled_dot_product_attention) " | head -40
  echo "== torch peer"
  timeout 45 python3 tools/bench/torch_ops_peer.py --device cuda --sizes 1024,8192 \
    > "$TMP/torch.json" 2> "$TMP/torch.err"
  echo "torch peer rc=$? $(tail -3 "$TMP/torch.err" | tr '\n' ' ')"
  PEER=()
  [ -s "$TMP/torch.json" ] && python3 -c "import json,sys; json.load(open(sys.argv[1]))" "$TMP/torch.json" \
    && PEER=(--peer-json "$TMP/torch.json")
  echo "== flagstone bench ops -d cuda:0 (memory-bound ops, GEMM)"
  timeout 75 "$FS" bench ops -d cuda:0 --sizes 1024,8192 --max-seconds 0.5 \
    --ops add,mul,silu_and_mul,softmax,rms_norm,layer_norm,rotary,cross_entropy,mm,linear \
    "${PEER[@]}" --json-out "$TMP/ours.json" 2> "$TMP/ours.err"
  echo "rc=$?"; tail -5 "$TMP/ours.err"
  for v in 1 2; do
    echo "== flagstone bench ops -d cuda:0, tuning variant FLAGSTONE_CUDA_VARIANT=$v"
    FLAGSTONE_CUDA_VARIANT=$v timeout 40 "$FS" bench ops -d cuda:0 --sizes 1024,8192 \
      --max-seconds 0.5 --overhead-calls 0 \
      --ops add,mul,softmax,rms_norm,layer_norm,rotary,cross_entropy "${PEER[@]}" 2>/dev/null |
      grep -vE "^# (model|peak|peer|kernel|clock|vs_)"
  done
  echo "== flagstone bench ops -d cuda:0 (attention)"
  timeout 40 "$FS" bench ops -d cuda:0 --ops attention --sizes 1024,8192 --max-seconds 0.5 \
    --overhead-calls 200 "${PEER[@]}" --json-out "$TMP/ours_attn.json" 2> "$TMP/attn.err"
  echo "rc=$?"; tail -5 "$TMP/attn.err"
  echo "== JSON: ours"
  cat "$TMP/ours.json" "$TMP/ours_attn.json" 2>/dev/null
  echo "== JSON: torch peer"
  cat "$TMP/torch.json" 2>/dev/null
} > "$LOG" 2>&1
rm -rf "$TMP"
