#!/bin/bash
# GPU check of the ops layer's cuda provider (budget 200 s): parity of every implementation on
# cuda against the float64 reference, the CUDA-graph and >2^31-element tests, and attention
# prefill timed against PyTorch's scaled_dot_product_attention. Output: $OUT/opscuda.txt.
o="$OUT/opscuda.txt"
b=build-gpu
{
  echo "== parity of the families with cuda kernels (opencl hidden to save time)"
  # Families: 2 reduction, 4 norm, 5 llm, 6 attention, 7 sort, 8 sample, 9 linalg, 1 binary.
  OCL_ICD_VENDORS=/nonexistent FLAGSTONE_OPS_PARITY_REPORT=/tmp/opscuda_parity.txt \
    timeout 100 $b/tests/ops/ops_parity_test --gtest_brief=1 \
    --gtest_filter='*/4:*/5:*/6:*/9:*/7:*/8:*/2:*/1' 2>&1 |
    grep -E "cuda|Failure|FAILED|PASSED|rror|Expected|which is|differs|mismatch" | head -150
  echo "== parity report (family device provider passed failed refused)"
  grep cuda /tmp/opscuda_parity.txt
  echo "== cuda provider tests"
  timeout 80 $b/tests/ops/cuda/ops_cuda_tests --gtest_brief=1 2>&1 | tail -30
  echo "== attention prefill timing"
  timeout 25 python3 tools/gpu/opscuda_attention.py $b 2>&1 | tail -20
} >"$o" 2>&1
