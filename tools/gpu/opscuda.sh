#!/bin/bash
# GPU check of the ops layer's cuda provider (budget 40 s, most important first): the cuDNN
# attention and multinomial tests against the float64 reference, the row kernels timed per
# tuning variant (FLAGSTONE_CUDA_VARIANT, each checked against the cpu in the same run), then the
# other cuda provider tests (CUDA graph, >2^31 elements, decode attention, top-p) and attention
# timed beside PyTorch's SDPA if time is left. Output: $OUT/opscuda.txt.
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
  echo "== cuDNN attention and multinomial tests"
  timeout 12 $b/tests/ops/cuda/ops_cuda_tests --gtest_brief=1 \
    --gtest_filter='CudnnAttention.*:CudaMultinomial.*' 2>&1 | tail -25
  echo "== decoder layer in a CUDA graph, decode attention, top-p (the new defaults included)"
  timeout 10 $b/tests/ops/cuda/ops_cuda_tests --gtest_brief=1 \
    --gtest_filter='CudaGraph.*:*Decode*:*TopP*:CudaLargeTensor.RmsNorm*' 2>&1 | tail -12
  echo "== row kernels per variant (FLAGSTONE_CUDA_VARIANT; 0 = default; check vs cpu)"
  timeout 16 $b/tests/ops/cuda/ops_cuda_row_timing 2>&1 | head -400
  echo "== attention timing (cuDNN vendor, native, dispatch; torch SDPA in the same run)"
  timeout 4 python3 tools/gpu/opscuda_attention.py $b 2>&1 | tail -20
} >"$o" 2>&1
