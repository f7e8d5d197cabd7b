// Device-side building blocks of the cuda provider's kernels: f16/bf16 <-> f32 conversion,
// 128-bit vector loads, and warp/block reductions. Included only by the provider's .cu files.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

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

// Grid size for a grid-stride loop over `work` items with `threads` per block.
inline unsigned grid_for(int64_t work, int threads) {
  int64_t blocks = (work + threads - 1) / threads;
  if (blocks < 1) blocks = 1;
  if (blocks > (int64_t{1} << 20)) blocks = int64_t{1} << 20;
  return static_cast<unsigned>(blocks);
}

}  // namespace flagstone::ops::cuda
