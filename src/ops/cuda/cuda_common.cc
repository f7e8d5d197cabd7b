// Host-side helpers of the cuda provider and its registration entry point.
#include "cuda/cuda_common.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>

#include "internal.h"
#include "shape_rules.h"

#include "add_impl.h"

namespace flagstone::ops {
namespace cuda {

cudaStream_t stream_for(const Device& device) {
  int current = -1;
  if (cudaGetDevice(&current) != cudaSuccess || current != device.index()) {
    cudaError_t status = cudaSetDevice(device.index());
    FS_CHECK(status == cudaSuccess, kBackend, "cudaSetDevice(", device.index(), ") failed for ",
             device.spec(), ": ", cudaGetErrorString(status));
  }
  return static_cast<cudaStream_t>(device.impl().default_stream().native_handle());
}

namespace {
// Read from the environment once: a getenv per launch would cost ~0.1 us of every call.
std::atomic<int>& variant_slot() {
  static std::atomic<int> slot{[] {
    const char* v = std::getenv("FLAGSTONE_CUDA_VARIANT");
    return v && *v ? std::atoi(v) : -1;
  }()};
  return slot;
}
}  // namespace

int tuning_variant_override() {
  return variant_slot().load(std::memory_order_relaxed);
}

void set_tuning_variant(int variant) {
  variant_slot().store(variant, std::memory_order_relaxed);
}

void check_launch(cudaError_t status, std::string_view op, const Device& device) {
  if (status == cudaSuccess) return;
  throw_error(ErrorCategory::kBackend, "op '", op, "' on ", device.spec(),
              ": kernel launch failed: ", cudaGetErrorName(status), ": ",
              cudaGetErrorString(status));
}

void add_cuda(Registry& r, const std::string& op, std::vector<DType> dtypes, KernelFn fn,
              bool strided, std::function<std::string(const KernelArgs&)> supports,
              Provider provider) {
  add_backend_implementation(r, "cuda", op, std::move(dtypes), std::move(fn), strided,
                             std::move(supports), provider);
}

Shape broadcast_strides_of(const Tensor& t, const Shape& shape) {
  return broadcast_strides(t, shape);
}

NdLayout collapse_layout(const Shape& shape, const std::vector<Shape>& strides) {
  Shape sizes;
  std::vector<Shape> st;
  collapse_dims(shape, strides, sizes, st);
  FS_CHECK(sizes.size() <= static_cast<size_t>(kMaxLayoutDims), kUnsupported, "more than ",
           kMaxLayoutDims, " non-mergeable dims");
  NdLayout layout;
  layout.ndim = static_cast<int>(sizes.size());
  for (size_t d = 0; d < sizes.size(); ++d) {
    layout.sizes[d] = sizes[d];
    for (size_t k = 0; k < st.size() && k < 3; ++k) layout.strides[k][d] = st[k][d];
  }
  return layout;
}

}  // namespace cuda

void register_cuda_ops(Registry& registry) {
  cuda::register_cuda_blas(registry);
  cuda::register_cuda_elementwise(registry);
  cuda::register_cuda_norm(registry);
  cuda::register_cuda_attention(registry);
#ifdef FLAGSTONE_HAVE_CUDNN
  cuda::register_cudnn_attention(registry);
#endif
  cuda::register_cuda_quant(registry);
  cuda::register_cuda_sample(registry);
}

}  // namespace flagstone::ops
