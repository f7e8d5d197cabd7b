// Host-side helpers of the cuda provider: the stream and device pointers of a call, launch-error
// reporting that names the op and device, and registration of cuda implementations.
#pragma once

#include <cuda_runtime_api.h>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "cuda/kernels.h"
#include "flagstone/ops/registry.h"

namespace flagstone::ops::cuda {

inline const std::vector<DType> kHalfAndF32{DType::kF32, DType::kF16, DType::kBF16};

// Makes the call's device current on this thread and returns its default stream, where every op
// of the provider runs (so a capture of that stream records them).
cudaStream_t stream_for(const Device& device);

// Device address of a tensor's first element.
inline void* data_of(const Tensor& t) {
  return static_cast<char*>(t.buffer().handle()) + t.byte_offset();
}
template <typename T = void>
inline T* data_or_null(const Tensor& t) {
  return t.defined() ? static_cast<T*>(data_of(t)) : nullptr;
}

// Throws kBackend naming the op, the device and the CUDA error when `status` is a failure.
void check_launch(cudaError_t status, std::string_view op, const Device& device);

// Registers `fn` as a cuda implementation of `op`.
void add_cuda(Registry& r, const std::string& op, std::vector<DType> dtypes, KernelFn fn,
              bool strided = false,
              std::function<std::string(const KernelArgs&)> supports = nullptr,
              Provider provider = Provider::kNative);

// Input i when present and defined, else an undefined tensor.
inline Tensor optional_input(const KernelArgs& args, size_t i) {
  return i < args.inputs.size() ? args.inputs[i] : Tensor();
}

// Shapes/strides of output and inputs collapsed into the fewest dims (contiguous runs merged),
// for the strided elementwise kernels. Throws kUnsupported past kMaxLayoutDims.
NdLayout collapse_layout(const Shape& shape, const std::vector<Shape>& strides);
// Strides of `t` broadcast to `shape` (0 where t has size 1 or lacks the dim).
Shape broadcast_strides_of(const Tensor& t, const Shape& shape);

// Per-family registration (called from register_cuda_ops).
void register_cuda_blas(Registry& r);
void register_cuda_elementwise(Registry& r);
void register_cuda_norm(Registry& r);
void register_cuda_attention(Registry& r);
// cuDNN SDPA (vendor), built when the toolkit ships cuDNN 9 headers (cudnn_attention.cc).
void register_cudnn_attention(Registry& r);
void register_cuda_quant(Registry& r);
void register_cuda_sample(Registry& r);

}  // namespace flagstone::ops::cuda
