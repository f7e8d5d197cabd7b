#!/bin/bash
# GPU check of the ops layer's cuda provider (budget 170 s): parity of every implementation on
# cuda against the float64 reference (the cuDNN vendor attention included when PyTorch's cuDNN 9
# is found), the CUDA-graph and >2^31-element tests, and attention timed against PyTorch's
# scaled_dot_product_attention in the same run. Output: $OUT/opscuda.txt.
o="$OUT/opscuda.txt"
b=build-gpu
# cuDNN 9 (and the NVRTC its runtime-compiled engines need) from PyTorch's pip wheels.
nv=$(python3 -c 'import nvidia, os; print(os.path.dirname(nvidia.__path__[0]))' 2>/dev/null)
libs=$(ls -d "$nv"/nvidia/*/lib "$nv"/nvidia/cu*/lib 2>/dev/null | sort -u | tr '\n' ':')
export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:-}"
graph=$(find "$nv/nvidia" -name 'libcudnn_graph.so.9*' 2>/dev/null | head -1)
[ -n "$graph" ] && cudnn_dir=$(dirname "$graph") && export FLAGSTONE_CUDNN_PATH="$cudnn_dir"
{
  echo "== cuDNN: FLAGSTONE_CUDNN_PATH=${FLAGSTONE_CUDNN_PATH:-unset}"
  ls "$cudnn_dir" 2>&1 | head -12
  echo "== attention parity (family 6) first, with the cuDNN refusals' reasons"
  OCL_ICD_VENDORS=/nonexistent FLAGSTONE_OPS_PARITY_REPORT=/tmp/opscuda_attn.txt \
    timeout 40 $b/tests/ops/ops_parity_test --gtest_brief=1 \
    --gtest_filter='*/6' 2>&1 |
    grep -E "cuda|cuDNN|vendor|Failure|FAILED|PASSED|rror|Expected|which is|differs|mismatch" |
    head -60
  echo "== attention timing (cuDNN vendor, native flash, dispatch; torch SDPA in the same run)"
  timeout 40 python3 tools/gpu/opscuda_attention.py $b 2>&1 | tail -40
  echo "== the same prefill with cuDNN dynamic shapes and a kernel cache (FLAGSTONE_CUDNN_DYNAMIC=1)"
  FLAGSTONE_CUDNN_DYNAMIC=1 timeout 20 $b/tests/ops/cuda/ops_cuda_attention_timing 8192 2>&1 |
    tail -12
  echo "== parity of the other families with cuda kernels (opencl hidden to save time)"
  # Families: 2 reduction, 4 norm, 5 llm, 7 sort, 8 sample, 9 linalg, 1 binary.
  OCL_ICD_VENDORS=/nonexistent FLAGSTONE_OPS_PARITY_REPORT=/tmp/opscuda_parity.txt \
    timeout 45 $b/tests/ops/ops_parity_test --gtest_brief=1 \
    --gtest_filter='*/4:*/5:*/9:*/7:*/8:*/2:*/1' 2>&1 |
    grep -E "Failure|FAILED|PASSED|rror|Expected|which is|differs|mismatch" | head -80
  echo "== parity report (family device provider passed failed refused)"
  grep cuda /tmp/opscuda_attn.txt /tmp/opscuda_parity.txt
  echo "== cuda provider tests"
  timeout 30 $b/tests/ops/cuda/ops_cuda_tests --gtest_brief=1 2>&1 | tail -30
} >"$o" 2>&1
