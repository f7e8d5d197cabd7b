#!/bin/bash
# GPU check of the ops layer's cuda provider (budget 200 s): parity of every implementation on
# cuda against the float64 reference, the CUDA-graph and >2^31-element tests, and attention
# prefill timed against PyTorch's scaled_dot_product_attention. Output: $OUT/opscuda.txt.
o="$OUT/opscuda.txt"
b=build-gpu
{
  echo "== dispatch choices on cuda"
  timeout 10 $b/src/cli/flagstone ops --json 2>/dev/null | python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
    print(json.dumps(d, indent=None)[:3000])
except Exception as e:
    print("no json:", e)' 2>&1 | head -c 3000
  echo
  echo "== parity on every device (cuda tallies and failures)"
  FLAGSTONE_OPS_PARITY_REPORT=/tmp/opscuda_parity.txt timeout 90 $b/tests/ops/ops_parity_test \
    --gtest_brief=1 2>&1 | grep -E "cuda|Failure|FAILED|PASSED|rror" | head -120
  echo "== parity report (family device provider passed failed refused)"
  grep cuda /tmp/opscuda_parity.txt
  echo "== cuda provider tests"
  timeout 80 $b/tests/ops/cuda/ops_cuda_tests --gtest_brief=1 2>&1 | tail -30
  echo "== attention prefill timing"
  timeout 25 python3 tools/gpu/opscuda_attention.py $b 2>&1 | tail -20
} >"$o" 2>&1
