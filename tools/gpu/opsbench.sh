#!/usr/bin/env bash
# GPU-window script of the operator benchmark (owner: opsbench): the bench library's tests on
# every device, PyTorch eager as the peer, and `flagstone bench ops` on cuda:0 with the peer
# merged in. Everything lands in $OUT/opsbench.txt. Budget: 200 s.
set -u
OUT=${OUT:-/tmp/opsbench-out}
mkdir -p "$OUT"
LOG="$OUT/opsbench.txt"
FS=build-gpu/src/cli/flagstone
TMP=$(mktemp -d)
mkdir -p /tmp/icd && echo libnvidia-opencl.so.1 > /tmp/icd/nvidia.icd
export OCL_ICD_VENDORS=/tmp/icd
{
  echo "== opsbench $(date -u +%FT%TZ) $(git rev-parse --short HEAD 2>/dev/null)"
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
