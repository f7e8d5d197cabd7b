// Rotary embedding of one 8-element pack of a head held by a lane, shared by the engine's fused
// decode kernels (rope_attention.cu, the persistent step's megakernel_attention.cuh).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "../../ops/cuda/attention_decode.cuh"

namespace flagstone::engine::detail {

// This lane's 8 angle entries (elements part * 8 ...) of position p from [positions, D / 2]
// cos/sin tables in T: neox halves repeat the table, interleaved pairs share an entry.
template <typename T, int D>
__device__ __forceinline__ void load_angles(const void* cos_table, const void* sin_table, int64_t p,
                                            int part, bool neox, float (&c)[8], float (&s)[8]) {
  const T* cos = static_cast<const T*>(cos_table) + p * (D / 2);
  const T* sin = static_cast<const T*>(sin_table) + p * (D / 2);
#pragma unroll
  for (int e = 0; e < 8; ++e) {
    const int i = neox ? (part * 8 + e) % (D / 2) : (part * 8 + e) / 2;
    c[e] = decode_core::to_float(cos[i]), s[e] = decode_core::to_float(sin[i]);
  }
}

// Rotary of this lane's 8 elements of a head, as rope_kv_write computes it (float, rounded once
// to T): neox pairs element i with i + D/2, held by the lane D / 16 away; interleaved pairs are
// inside the lane. Every lane of the warp calls it (a shuffle).
template <typename T, int D>
__device__ __forceinline__ void rotate_pack(float (&x)[8], const float (&c)[8], const float (&s)[8],
                                            int part, bool neox) {
  constexpr int kLanes = D / 8;
  float partner[8], out[8];
#pragma unroll
  for (int e = 0; e < 8; ++e) partner[e] = __shfl_xor_sync(0xffffffffu, x[e], kLanes / 2);
  if (neox) {
    const bool low = part < kLanes / 2;
#pragma unroll
    for (int e = 0; e < 8; ++e)
      out[e] = low ? x[e] * c[e] - partner[e] * s[e] : x[e] * c[e] + partner[e] * s[e];
  } else {
#pragma unroll
    for (int e = 0; e < 8; e += 2) {
      out[e] = x[e] * c[e] - x[e + 1] * s[e];
      out[e + 1] = x[e + 1] * c[e] + x[e] * s[e];
    }
  }
#pragma unroll
  for (int e = 0; e < 8; ++e) x[e] = decode_core::to_float(decode_core::round_to<T>(out[e]));
}

}  // namespace flagstone::engine::detail
