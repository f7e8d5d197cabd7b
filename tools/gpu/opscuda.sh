#!/bin/bash
# GPU check of the ops layer's cuda provider (budget 150 s): the cuda provider tests (cuDNN
# attention, decode attention and top-p sampling against the float64 reference, CUDA graph,
# >2^31 elements), the row kernels timed per tuning variant (each checked against the cpu),
# attention timed against PyTorch's scaled_dot_product_attention in the same run, and parity of
# the llm, norm and sample families. Output: $OUT/opscuda.txt.
o="$OUT/opscuda.txt"
b=build-gpu
# cuDNN 9 (and the NVRTC its runtime-compiled engines need) from PyTorch's pip wheels.
nv=$(python3 -c 'import nvidia, os; print(os.path.dirname(nvidia.__path__[0]))' 2>/dev/null)
libs=$(ls -d "$nv"/nvidia/*/lib "$nv"/nvidia/cu*/lib 2>/dev/null | sort -u | tr '\n' ':')
export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:-}"
graph=$(find "$nv/nvidia" -name 'libcudnn_graph.so.9*' 2>/dev/null | head -1)
[ -n "$graph" ] && export FLAGSTONE_CUDNN_PATH="$(dirname "$graph")"
{
  echo "== cuDNN: FLAGSTONE_CUDNN_PATH=${FLAGSTONE_CUDNN_PATH:-unset}"
  echo "== cuda provider tests"
  timeout 30 $b/tests/ops/cuda/ops_cuda_tests --gtest_brief=1 2>&1 | tail -20
  echo "== row kernels per variant (FLAGSTONE_CUDA_VARIANT; 0 = default)"
  timeout 40 $b/tests/ops/cuda/ops_cuda_row_timing 2>&1 | tail -80
  echo "== attention timing (cuDNN vendor, native, dispatch; torch SDPA in the same run)"
  timeout 30 python3 tools/gpu/opscuda_attention.py $b 2>&1 | tail -40
  echo "== parity of the norm, llm and sample families (opencl hidden to save time)"
  OCL_ICD_VENDORS=/nonexistent FLAGSTONE_OPS_PARITY_REPORT=/tmp/opscuda_parity.txt \
    timeout 25 $b/tests/ops/ops_parity_test --gtest_brief=1 --gtest_filter='*/4:*/5:*/8' 2>&1 |
    grep -E "Failure|FAILED|PASSED|rror|Expected|which is|differs|mismatch" | head -40
  echo "== parity report (family device provider passed failed refused)"
  grep cuda /tmp/opscuda_parity.txt
  for v in 1 2; do
    echo "== parity of norm and llm with FLAGSTONE_CUDA_VARIANT=$v"
    rm -f /tmp/opscuda_parity_v.txt
    FLAGSTONE_CUDA_VARIANT=$v OCL_ICD_VENDORS=/nonexistent \
      FLAGSTONE_OPS_PARITY_REPORT=/tmp/opscuda_parity_v.txt timeout 12 $b/tests/ops/ops_parity_test \
      --gtest_brief=1 --gtest_filter='*/4:*/5' 2>&1 | grep -E "Failure|differs|mismatch" | head -10
    grep "cuda:0 native" /tmp/opscuda_parity_v.txt
  done
} >"$o" 2>&1
