// cuda native GEMV for few activation rows (decode's linear): every weight row is streamed once
// with 16-byte loads, several in flight per thread, while the 1 to 8 x rows are re-read from L1;
// f32 accumulation, warp shuffles, then shared memory to combine the warps that split a row.
#include <atomic>

#include "cuda/device_utils.cuh"
#include "cuda/gemv.h"

namespace flagstone::ops::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

// Weight bytes are used once: keep them out of L1, where the x rows every warp re-reads live.
__device__ __forceinline__ uint4 load_once(const void* p) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
  return v;
}

template <typename T>
__device__ __forceinline__ float dot_pack(const uint4& w, const uint4& x) {
  const T* wv = reinterpret_cast<const T*>(&w);
  const T* xv = reinterpret_cast<const T*>(&x);
  float s = 0;
#pragma unroll
  for (int i = 0; i < Pack<T>::kCount; ++i) s = fmaf(to_f(wv[i]), to_f(xv[i]), s);
  return s;
}

// A block of kWarps warps serves kWarps / wpr output features; the wpr warps of a feature
// interleave over its row (warp p takes chunks p * 32 + lane + i * 32 * wpr), so each warp load
// covers 512 contiguous bytes and short rows still give every SM enough loads in flight. kVec:
// 16-byte chunks (k, the leading dims and the pointers allow it), else single elements. MB is the
// row count rounded up; rows past a.m are skipped with warp-uniform branches.
template <typename T, int MB, int U, bool kVec>
__global__ void __launch_bounds__(kThreads) gemv_kernel(GemvArgs a, int wpr) {
  __shared__ float partial[kWarps][MB];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int rows_per_block = kWarps / wpr;
  const int64_t n0 = int64_t{blockIdx.x} * rows_per_block;
  const int64_t n = n0 + warp / wpr;
  const int part = warp % wpr;
  const int m = static_cast<int>(a.m);
  const T* x = static_cast<const T*>(a.x);
  float acc[MB];
#pragma unroll
  for (int r = 0; r < MB; ++r) acc[r] = 0;
  if (n < a.n) {
    const T* w = static_cast<const T*>(a.w) + n * a.ldw;
    const int64_t stride = int64_t{32} * wpr;
    if constexpr (kVec) {
      constexpr int V = Pack<T>::kCount;
      const int64_t chunks = a.k / V;
      int64_t c = int64_t{part} * 32 + lane;
      for (; c + (U - 1) * stride < chunks; c += U * stride) {
        uint4 wv[U];
#pragma unroll
        for (int u = 0; u < U; ++u) wv[u] = load_once(w + (c + u * stride) * V);
#pragma unroll
        for (int u = 0; u < U; ++u) {
#pragma unroll
          for (int r = 0; r < MB; ++r) {
            if (r < m) {
              const T* xr = x + r * a.ldx + (c + u * stride) * V;
              acc[r] += dot_pack<T>(wv[u], __ldg(reinterpret_cast<const uint4*>(xr)));
            }
          }
        }
      }
      for (; c < chunks; c += stride) {
        uint4 wv = load_once(w + c * V);
#pragma unroll
        for (int r = 0; r < MB; ++r) {
          if (r < m) {
            const T* xr = x + r * a.ldx + c * V;
            acc[r] += dot_pack<T>(wv, __ldg(reinterpret_cast<const uint4*>(xr)));
          }
        }
      }
    } else {
      for (int64_t i = int64_t{part} * 32 + lane; i < a.k; i += stride) {
        float wv = to_f(w[i]);
#pragma unroll
        for (int r = 0; r < MB; ++r)
          if (r < m) acc[r] = fmaf(wv, to_f(x[r * a.ldx + i]), acc[r]);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < MB; ++r) {
    float s = warp_sum(acc[r]);
    if (lane == 0) partial[warp][r] = s;
  }
  __syncthreads();
  if (threadIdx.x < rows_per_block * MB) {
    const int row = threadIdx.x / MB, r = threadIdx.x % MB;
    const int64_t j = n0 + row;
    if (j < a.n && r < m) {
      float s = 0;
      for (int p = 0; p < wpr; ++p) s += partial[row * wpr + p][r];
      if (a.bias) s += to_f(static_cast<const T*>(a.bias)[j]);
      static_cast<T*>(a.out)[r * a.ldo + j] = from_f<T>(s);
    }
  }
}

// Warps per output feature: two while the grid holds fewer than 32 warps per SM (half the
// resident capacity) and each warp still gets two full unrolled steps, else one. In the H200
// sweep of session 11 two warps won for 2048 to 3072 features, and more warps never did.
int pick_warps_per_row(int64_t n, int64_t chunks_per_row, int unroll) {
  const int64_t target = int64_t{current_device_sm_count()} * 32;
  return n < target && chunks_per_row >= int64_t{64} * unroll ? 2 : 1;
}

template <typename T, int MB, int U, bool kVec>
cudaError_t run(const GemvArgs& a, int wpr, cudaStream_t stream) {
  const int64_t rows_per_block = kWarps / wpr;
  const int64_t blocks = (a.n + rows_per_block - 1) / rows_per_block;
  if (blocks > 0x7fffffff) return cudaErrorInvalidValue;
  gemv_kernel<T, MB, U, kVec><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(a, wpr);
  return cudaGetLastError();
}

template <typename T, int U>
cudaError_t run_rows(const GemvArgs& a, int wpr, cudaStream_t stream) {
  if (a.m <= 1) return run<T, 1, U, true>(a, wpr, stream);
  if (a.m <= 2) return run<T, 2, U, true>(a, wpr, stream);
  if (a.m <= 4) return run<T, 4, U, true>(a, wpr, stream);
  return run<T, 8, U, true>(a, wpr, stream);
}

bool aligned(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}

template <typename T>
cudaError_t launch_typed(const GemvArgs& a, cudaStream_t stream) {
  if (a.m == 0 || a.n == 0) return cudaSuccess;
  if (a.m < 0 || a.m > kGemvMaxRows || a.n < 0 || a.k < 0) return cudaErrorInvalidValue;
  constexpr int V = Pack<T>::kCount;
  const bool vec = a.k % V == 0 && a.ldx % V == 0 && a.ldw % V == 0 && aligned(a.x) && aligned(a.w);
  const int64_t chunks = vec ? a.k / V : a.k;
  int wpr = a.warps_per_row ? a.warps_per_row : pick_warps_per_row(a.n, chunks, 4);
  if (wpr != 1 && wpr != 2 && wpr != 4 && wpr != 8) return cudaErrorInvalidValue;
  if (!vec) return run<T, 8, 1, false>(a, wpr, stream);
  int unroll = a.unroll ? a.unroll : 4;  // 8 was slower on every shape of that sweep
  if (unroll == 4) return run_rows<T, 4>(a, wpr, stream);
  if (unroll == 8) return run_rows<T, 8>(a, wpr, stream);
  return cudaErrorInvalidValue;
}

}  // namespace

int current_device_sm_count() {
  static std::atomic<int> counts[64];
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= 64) return 108;
  int c = counts[dev].load(std::memory_order_relaxed);
  if (c == 0) {
    if (cudaDeviceGetAttribute(&c, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || c <= 0)
      c = 108;
    counts[dev].store(c, std::memory_order_relaxed);
  }
  return c;
}

cudaError_t launch_gemv(DType dtype, const GemvArgs& args, cudaStream_t stream) {
  switch (dtype) {
    case DType::kF32:
      return launch_typed<float>(args, stream);
    case DType::kF16:
      return launch_typed<__half>(args, stream);
    case DType::kBF16:
      return launch_typed<__nv_bfloat16>(args, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace flagstone::ops::cuda
