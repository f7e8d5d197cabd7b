#!/bin/bash
# GPU check of the ops layer's cuda provider: parity of every implementation on cuda against the
# float64 reference, the CUDA-graph and >2^31-element tests, and attention prefill timed against
# PyTorch's scaled_dot_product_attention. Output: $OUT/opscuda.txt.
o="$OUT/opscuda.txt"
b=build-gpu
{
  echo "== flagstone ops (cuda column)"
  timeout 20 $b/src/cli/flagstone ops 2>&1 | head -5
  echo "== parity on every device (cuda lines and failures)"
  FLAGSTONE_OPS_PARITY_REPORT=/tmp/parity.txt timeout 100 $b/tests/ops/ops_parity_test \
    --gtest_brief=1 2>&1 | grep -E "cuda|Failure|FAILED|PASSED|rror|expected|which is" | head -150
  echo "== parity report"; grep cuda /tmp/parity.txt
  echo "== cuda provider tests"
  timeout 60 $b/tests/ops/cuda/ops_cuda_tests --gtest_brief=1 2>&1 | tail -30
  echo "== attention prefill timing"
  timeout 40 python3 tools/gpu/opscuda_attention.py $b 2>&1 | tail -20
} >"$o" 2>&1
