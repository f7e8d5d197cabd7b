// cuda native selection kernels over the last dim: argmax, topk (k rounds of a block-wide
// selection, for the small k of sampling) and greedy token choice. Order as the cpu and the
// reference: NaN first, then by value, ties by the lower index.
#include "cuda/device_utils.cuh"
#include "cuda/kernels.h"

namespace flagstone::ops::cuda {
namespace {

constexpr int kThreads = 512;

struct Pick {
  float value;
  int64_t index;  // -1: nothing picked
};

__device__ __forceinline__ bool before(const Pick& a, const Pick& b, bool largest) {
  if (a.index < 0) return false;
  if (b.index < 0) return true;
  bool an = isnan(a.value), bn = isnan(b.value);
  if (an != bn) return an;
  if (!an && a.value != b.value) return largest ? a.value > b.value : a.value < b.value;
  return a.index < b.index;
}

// The first pick of the block under `before`; every thread gets it.
__device__ Pick block_best(Pick p, bool largest, Pick* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    Pick other{__shfl_xor_sync(0xffffffffu, p.value, o), __shfl_xor_sync(0xffffffffu, p.index, o)};
    if (before(other, p, largest)) p = other;
  }
  __syncthreads();
  if (lane == 0) scratch[warp] = p;
  __syncthreads();
  p = lane < warps ? scratch[lane] : Pick{0, -1};
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    Pick other{__shfl_xor_sync(0xffffffffu, p.value, o), __shfl_xor_sync(0xffffffffu, p.index, o)};
    if (before(other, p, largest)) p = other;
  }
  return p;
}

// Row r: k picks in order, each the best element strictly after the previous pick.
template <typename T>
__global__ void __launch_bounds__(kThreads) select_rows(SelectArgs a) {
  __shared__ Pick scratch[32];
  const T* row = static_cast<const T*>(a.x) + blockIdx.x * a.n;
  Pick prev{0, -1};
  for (int64_t r = 0; r < a.k; ++r) {
    Pick best{0, -1};
    for (int64_t j = threadIdx.x; j < a.n; j += blockDim.x) {
      Pick c{to_f(row[j]), j};
      if (prev.index >= 0 && !before(prev, c, a.largest)) continue;
      if (before(c, best, a.largest)) best = c;
    }
    best = block_best(best, a.largest, scratch);
    if (threadIdx.x == 0 && best.index >= 0) {
      if (a.indices) a.indices[blockIdx.x * a.k + r] = best.index;
      if (a.values) static_cast<T*>(a.values)[blockIdx.x * a.k + r] = row[best.index];
    }
    prev = best;
  }
}

template <typename T>
cudaError_t select_typed(const SelectArgs& a, cudaStream_t stream) {
  if (a.rows == 0 || a.k == 0) return cudaSuccess;
  int threads = a.n >= 4096 ? kThreads : a.n >= 512 ? 128 : 32;
  select_rows<T><<<static_cast<unsigned>(a.rows), threads, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_select(DType dtype, const SelectArgs& args, cudaStream_t stream) {
  switch (dtype) {
    case DType::kF32:
      return select_typed<float>(args, stream);
    case DType::kF16:
      return select_typed<__half>(args, stream);
    case DType::kBF16:
      return select_typed<__nv_bfloat16>(args, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace flagstone::ops::cuda
