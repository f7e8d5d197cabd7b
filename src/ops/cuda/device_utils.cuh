// Device-side building blocks of the cuda provider's kernels: f16/bf16 <-> f32 conversion,
// 128-bit vector loads, and warp/block reductions. Included only by the provider's .cu files.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>
#include <type_traits>

#include "cuda/kernels.h"
#include "flagstone/base/dtype.h"

namespace flagstone::ops::cuda {

// Storage type of a float dtype.
template <DType D>
struct StorageOf;
template <>
struct StorageOf<DType::kF32> {
  using type = float;
};
template <>
struct StorageOf<DType::kF16> {
  using type = __half;
};
template <>
struct StorageOf<DType::kBF16> {
  using type = __nv_bfloat16;
};

__device__ __forceinline__ float to_f(float v) {
  return v;
}
__device__ __forceinline__ float to_f(__half v) {
  return __half2float(v);
}
__device__ __forceinline__ float to_f(__nv_bfloat16 v) {
  return __bfloat162float(v);
}

template <typename T>
__device__ __forceinline__ T from_f(float v);
template <>
__device__ __forceinline__ float from_f<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __half from_f<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// A float read from a tensor whose dtype is only known at run time (secondary operands such as
// rotary tables or additive masks, where a template per combination would bloat the binary).
__device__ __forceinline__ float load_any(const void* base, DType dtype, int64_t index) {
  switch (dtype) {
    case DType::kF16:
      return __half2float(static_cast<const __half*>(base)[index]);
    case DType::kBF16:
      return __bfloat162float(static_cast<const __nv_bfloat16*>(base)[index]);
    case DType::kF64:
      return static_cast<float>(static_cast<const double*>(base)[index]);
    default:
      return static_cast<const float*>(base)[index];
  }
}

__device__ __forceinline__ int64_t load_index(const void* base, bool is_i64, int64_t index) {
  return is_i64 ? static_cast<const int64_t*>(base)[index]
                : static_cast<int64_t>(static_cast<const int32_t*>(base)[index]);
}

// 16 bytes of T, moved as one uint4 so the compiler emits 128-bit loads and stores.
template <typename T>
struct Pack {
  static constexpr int kCount = 16 / sizeof(T);
};

template <typename T>
__device__ __forceinline__ void load_pack(const T* p, float (&out)[Pack<T>::kCount]) {
  uint4 raw = *reinterpret_cast<const uint4*>(p);
  const T* v = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int i = 0; i < Pack<T>::kCount; ++i) out[i] = to_f(v[i]);
}

template <typename T>
__device__ __forceinline__ void store_pack(T* p, const float (&in)[Pack<T>::kCount]) {
  uint4 raw;
  T* v = reinterpret_cast<T*>(&raw);
#pragma unroll
  for (int i = 0; i < Pack<T>::kCount; ++i) v[i] = from_f<T>(in[i]);
  *reinterpret_cast<uint4*>(p) = raw;
}

// A pack kept as its raw 16 bytes (4 registers) until used: an f16/bf16 row held this way takes
// half the registers of f32 values, so a thread can keep twice the bytes in flight.
// Takes the pack by value: a reference into shared memory would be read 2 bytes per element;
// bf16 widens with one shift or mask per element.
template <typename T>
__device__ __forceinline__ void unpack(uint4 raw, float (&out)[Pack<T>::kCount]) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      out[2 * i] = __uint_as_float(w[i] << 16);
      out[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    }
  } else {
    const T* v = reinterpret_cast<const T*>(&raw);
#pragma unroll
    for (int i = 0; i < Pack<T>::kCount; ++i) out[i] = to_f(v[i]);
  }
}

template <typename T>
__device__ __forceinline__ uint4 pack(const float (&in)[Pack<T>::kCount]) {
  uint4 raw;
  if constexpr (sizeof(T) == 2) {
    // Pairs convert with one instruction each (cvt.rn.bf16x2.f32 / cvt.rn.f16x2.f32).
    uint32_t* w = reinterpret_cast<uint32_t*>(&raw);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      if constexpr (std::is_same_v<T, __half>) {
        __half2 h = __floats2half2_rn(in[2 * i], in[2 * i + 1]);
        w[i] = *reinterpret_cast<uint32_t*>(&h);
      } else {
        __nv_bfloat162 h = __floats2bfloat162_rn(in[2 * i], in[2 * i + 1]);
        w[i] = *reinterpret_cast<uint32_t*>(&h);
      }
    }
  } else {
    T* v = reinterpret_cast<T*>(&raw);
#pragma unroll
    for (int i = 0; i < Pack<T>::kCount; ++i) v[i] = from_f<T>(in[i]);
  }
  return raw;
}

// exp2 as the bare MUFU instruction (results below 2^-126 flush to zero): for sums of
// exp(x - max), where such terms are below f32's resolution of the sum anyway, and for f16
// outputs (whose smallest subnormal is 2^-24).
__device__ __forceinline__ float exp2_ftz(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// Max over the packs k < P that `mine(k)` says this thread holds. 16-bit types compare as
// pairs (HMNMX2, exact: a max needs no rounding), two elements per instruction. NaN is skipped,
// as fmaxf does (a NaN still poisons the exp sums that follow).
template <typename T, int P, typename F>
__device__ __forceinline__ float packs_max(const uint4 (&raw)[P], F mine) {
  if constexpr (sizeof(T) == 2) {
    using T2 = std::conditional_t<std::is_same_v<T, __half>, __half2, __nv_bfloat162>;
    T2 m;
    if constexpr (std::is_same_v<T, __half>)
      m = __float2half2_rn(-INFINITY);
    else
      m = __float2bfloat162_rn(-INFINITY);
#pragma unroll
    for (int k = 0; k < P; ++k) {
      if (!mine(k)) continue;
      const T2* h = reinterpret_cast<const T2*>(&raw[k]);
#pragma unroll
      for (int i = 0; i < 4; ++i) m = __hmax2(m, h[i]);
    }
    return fmaxf(to_f(m.x), to_f(m.y));
  } else {
    float m = -INFINITY;
#pragma unroll
    for (int k = 0; k < P; ++k) {
      if (!mine(k)) continue;
      float v[Pack<T>::kCount];
      unpack<T>(raw[k], v);
#pragma unroll
      for (int j = 0; j < Pack<T>::kCount; ++j) m = fmaxf(m, v[j]);
    }
    return m;
  }
}

// Loads and stores of data touched once: streaming (evict-first) when kStream, so a large input
// does not push reused data (weights, tables) out of L2.
template <bool kStream>
__device__ __forceinline__ uint4 load16(const void* p) {
  if constexpr (kStream) return __ldcs(reinterpret_cast<const uint4*>(p));
  return *reinterpret_cast<const uint4*>(p);
}
template <bool kStream>
__device__ __forceinline__ void store16(void* p, const uint4& v) {
  if constexpr (kStream)
    __stcs(reinterpret_cast<uint4*>(p), v);
  else
    *reinterpret_cast<uint4*>(p) = v;
}

__device__ __forceinline__ bool aligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum (or max) over the block; every thread gets the result. `scratch` holds 32 floats; the
// block size is a multiple of 32. Safe to call repeatedly (it synchronizes before reuse).
template <bool kMax>
__device__ __forceinline__ float block_reduce(float v, float* scratch) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = kMax ? warp_max(v) : warp_sum(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float r = lane < warps ? scratch[lane] : (kMax ? -INFINITY : 0.0f);
  return kMax ? warp_max(r) : warp_sum(r);
}

// block_reduce for one use of `scratch` (32 floats): no barrier before it, none when the block
// is a single warp.
template <bool kMax>
__device__ __forceinline__ float block_reduce_once(float v, float* scratch) {
  v = kMax ? warp_max(v) : warp_sum(v);
  const int warps = blockDim.x >> 5, lane = threadIdx.x & 31;
  if (warps == 1) return v;
  if (lane == 0) scratch[threadIdx.x >> 5] = v;
  __syncthreads();
  float r = lane < warps ? scratch[lane] : (kMax ? -INFINITY : 0.0f);
  return kMax ? warp_max(r) : warp_sum(r);
}

// Values of a one-barrier block reduction: Op has `V identity()` and `V merge(V, V)`; V is a
// struct of floats. Every thread gets the result. `scratch` holds one V per warp and serves one
// call (no barrier guards its reuse).
template <typename V>
__device__ __forceinline__ V shfl_xor_v(V v, int offset) {
  static_assert(sizeof(V) % sizeof(float) == 0);
  constexpr int K = sizeof(V) / sizeof(float);
  float f[K];
  memcpy(f, &v, sizeof(V));
#pragma unroll
  for (int k = 0; k < K; ++k) f[k] = __shfl_xor_sync(0xffffffffu, f[k], offset);
  memcpy(&v, f, sizeof(V));
  return v;
}

template <typename Op, typename V>
__device__ __forceinline__ V warp_merge(V v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = Op::merge(v, shfl_xor_v(v, o));
  return v;
}

template <typename Op, typename V>
__device__ __forceinline__ V block_merge(V v, V* scratch) {
  v = warp_merge<Op>(v);
  const int warps = blockDim.x >> 5;
  if (warps == 1) return v;
  const int lane = threadIdx.x & 31;
  if (lane == 0) scratch[threadIdx.x >> 5] = v;
  __syncthreads();
  return warp_merge<Op>(lane < warps ? scratch[lane] : Op::identity());
}

struct SumOp {
  static __device__ __forceinline__ float identity() { return 0.0f; }
  static __device__ __forceinline__ float merge(float a, float b) { return a + b; }
};

inline constexpr float kLog2e = 1.4426950408889634f;

// Running max and the sum of exp(x - max) over the values seen.
struct MaxSum {
  float m, s;
};
struct MaxSumOp {
  static __device__ __forceinline__ MaxSum identity() { return {-INFINITY, 0.0f}; }
  static __device__ __forceinline__ MaxSum merge(MaxSum a, MaxSum b) {
    float m = fmaxf(a.m, b.m);
    // A side that saw only -inf (or nothing) adds nothing; -inf - -inf would be NaN.
    float sa = a.m == -INFINITY ? 0.0f : a.s * exp2f((a.m - m) * kLog2e);
    float sb = b.m == -INFINITY ? 0.0f : b.s * exp2f((b.m - m) * kLog2e);
    return {m, sa + sb};
  }
};

// Count, mean and sum of squared deviations (Chan et al.'s parallel merge): the variance of a
// row in one reduction without the cancellation of E[x^2] - E[x]^2.
struct Moments {
  float n, mean, m2;
};
struct MomentsOp {
  static __device__ __forceinline__ Moments identity() { return {0.0f, 0.0f, 0.0f}; }
  static __device__ __forceinline__ Moments merge(Moments a, Moments b) {
    float n = a.n + b.n;
    if (n == 0.0f) return a;
    float d = b.mean - a.mean, fb = b.n / n;
    return {n, a.mean + d * fb, a.m2 + b.m2 + d * d * a.n * fb};
  }
};

// Kernel variant of an op: FLAGSTONE_CUDA_VARIANT=N (read once, or set_tuning_variant from a
// timing tool) picks variant N of every op that has one (0: the op's first kernel; the
// launchers name the others), else `fallback`, the op's default.
inline int tuning_variant(int fallback) {
  int v = tuning_variant_override();
  return v >= 0 ? v : fallback;
}

// Loads pack threadIdx.x + k * blockDim.x of the row for k < P, every load issued before any
// is used. Packs past the row are left unset (callers test `owns`).
template <int P, bool kStream, typename T>
__device__ __forceinline__ void load_raw(const T* row, uint32_t packs, uint4 (&raw)[P]) {
#pragma unroll
  for (int k = 0; k < P; ++k) {
    uint32_t p = threadIdx.x + k * blockDim.x;
    if (p < packs) raw[k] = load16<kStream>(row + size_t{p} * Pack<T>::kCount);
  }
}

__device__ __forceinline__ bool owns(int k, uint32_t packs) {
  return threadIdx.x + k * blockDim.x < packs;
}

template <int P, bool kStream, typename T>
__device__ __forceinline__ void store_raw(T* row, uint32_t packs, const uint4 (&raw)[P]) {
#pragma unroll
  for (int k = 0; k < P; ++k) {
    uint32_t p = threadIdx.x + k * blockDim.x;
    if (p < packs) store16<kStream>(row + size_t{p} * Pack<T>::kCount, raw[k]);
  }
}

// 16 bytes from global to shared memory without a register round trip (cp.async, sm_80+);
// wait_async_copies waits for this thread's copies.
__device__ __forceinline__ void copy16_async(void* smem, const void* gmem) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  auto s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem));
#else
  *static_cast<uint4*>(smem) = *static_cast<const uint4*>(gmem);
#endif
}

__device__ __forceinline__ void wait_async_copies() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\ncp.async.wait_all;\n" ::: "memory");
#endif
}

// Grid size for a grid-stride loop over `work` items with `threads` per block.
inline unsigned grid_for(int64_t work, int threads) {
  int64_t blocks = (work + threads - 1) / threads;
  if (blocks < 1) blocks = 1;
  if (blocks > (int64_t{1} << 20)) blocks = int64_t{1} << 20;
  return static_cast<unsigned>(blocks);
}

}  // namespace flagstone::ops::cuda
