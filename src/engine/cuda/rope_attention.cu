// The decode step's attention fused with what precedes it (FLAGSTONE_ENGINE_ROPE_ATTENTION=1, a
// candidate beside the rotary+KV kernel and paged_attention): each block turns its GQA group's
// query heads with the rotary tables in registers, the block holding the newest position also
// turns that key and appends it and the value to the cache, and the attention follows the ops
// library's split decode kernel (blocks sized from the live length, last split merges).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>

#include "kv_cache_write.h"

namespace flagstone::engine::detail {
namespace {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxSplits = 128;
constexpr float kLog2e = 1.4426950408889634f;

__device__ __forceinline__ float to_f(__half v) {
  return __half2float(v);
}
__device__ __forceinline__ float to_f(__nv_bfloat16 v) {
  return __bfloat162float(v);
}
template <typename T>
__device__ __forceinline__ T from_f(float v);
template <>
__device__ __forceinline__ __half from_f<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

template <typename T>
__device__ __forceinline__ void unpack8(const uint4& raw, float (&out)[8]) {
  const T* v = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int i = 0; i < 8; ++i) out[i] = to_f(v[i]);
}

__device__ __forceinline__ float rescale(float x, float m) {
  return m == -INFINITY ? 0.0f : exp2f(x - m);
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Rotary of this lane's 8 elements (elements part * 8 ...) of a head, as rope_kv_write computes
// it (float, rounded once to T): neox pairs element i with i + D/2, held by the lane kLanes / 2
// away; interleaved pairs are inside the lane. `c`/`s` hold the lane's 8 angle entries.
template <typename T, int D>
__device__ __forceinline__ void rotate(float (&x)[8], const float (&c)[8], const float (&s)[8],
                                       int part, bool neox) {
  constexpr int kLanes = D / 8;
  float partner[8];
#pragma unroll
  for (int e = 0; e < 8; ++e) partner[e] = __shfl_xor_sync(0xffffffffu, x[e], kLanes / 2);
  float out[8];
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
  for (int e = 0; e < 8; ++e) x[e] = to_f(from_f<T>(out[e]));
}

template <typename T, int D, int G>
__global__ void __launch_bounds__(kThreads) rope_attention(RopeAttentionArgs a) {
  constexpr int kLanes = D / 8, kRows = 32 / kLanes, kStep = kWarps * kRows;
  constexpr int U = G >= 8 ? 2 : 4;
  constexpr int kWidth = 2 + D;
  __shared__ float merge[kWarps * G * kWidth];
  __shared__ float weight[G][kMaxSplits];
  __shared__ float total[G];
  __shared__ bool last;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int sub = lane / kLanes, part = lane % kLanes;
  const int slot = warp * kRows + sub;
  const int64_t split = blockIdx.x, kh = blockIdx.y, b = blockIdx.z;
  const int64_t splits = gridDim.x;
  const int64_t hq = a.q_heads, hk = a.kv_heads;
  const T* heads = static_cast<const T*>(a.heads) + b * a.heads_batch;

  uint4 qraw[G];
#pragma unroll
  for (int g = 0; g < G; ++g)
    qraw[g] = *reinterpret_cast<const uint4*>(heads + (kh * G + g) * D + part * 8);
  const int64_t p = a.start[b];
  const bool bad = p < 0 || p >= a.capacity || p >= a.max_positions;
  const int64_t end = bad ? 0 : p + 1;
  int64_t chunk = max(int64_t{U * kStep}, (end + splits - 1) / splits);
  chunk = (chunk + kStep - 1) / kStep * kStep;
  const int64_t active = max(int64_t{1}, (end + chunk - 1) / chunk);
  if (split >= active) return;
  const int64_t j_begin = split * chunk, j_end = min(end, j_begin + chunk);

  // The lane's rotary angles at position p.
  float c[8] = {}, s[8] = {};
  if (!bad) {
    const T* cos = static_cast<const T*>(a.cos) + p * (D / 2);
    const T* sin = static_cast<const T*>(a.sin) + p * (D / 2);
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const int i = a.neox ? (part * 8 + e) % (D / 2) : (part * 8 + e) / 2;
      c[e] = to_f(cos[i]), s[e] = to_f(sin[i]);
    }
  }
  float q[G][8];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    unpack8<T>(qraw[g], q[g]);
    if (!bad) rotate<T, D>(q[g], c, s, part, a.neox);
#pragma unroll
    for (int e = 0; e < 8; ++e) q[g][e] *= a.scale * kLog2e;
  }
  const int64_t row = hk * D;  // elements per cache position
  const T* kbase = static_cast<const T*>(a.k_cache) + b * a.capacity * row + kh * D + part * 8;
  const T* vbase = static_cast<const T*>(a.v_cache) + b * a.capacity * row + kh * D + part * 8;
  // The split holding position p appends its key (turned) and value first.
  if (!bad && j_end == end) {
    if (warp == 0) {
      // Every lane turns (the shuffles need the whole warp); the first row group writes.
      float k[8];
      unpack8<T>(*reinterpret_cast<const uint4*>(heads + (hq + kh) * D + part * 8), k);
      rotate<T, D>(k, c, s, part, a.neox);
      if (sub == 0) {
        uint4 packed;
        T* o = reinterpret_cast<T*>(&packed);
#pragma unroll
        for (int e = 0; e < 8; ++e) o[e] = from_f<T>(k[e]);
        *reinterpret_cast<uint4*>(const_cast<T*>(kbase) + p * row) = packed;
        *reinterpret_cast<uint4*>(const_cast<T*>(vbase) + p * row) =
            *reinterpret_cast<const uint4*>(heads + (hq + hk + kh) * D + part * 8);
      }
    }
    __syncthreads();
  }

  float m[G], l[G], acc[G][8];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    m[g] = -INFINITY, l[g] = 0;
#pragma unroll
    for (int e = 0; e < 8; ++e) acc[g][e] = 0;
  }
  for (int64_t base = j_begin; base < j_end; base += U * kStep) {
    uint4 kraw[U], vraw[U];
    bool has[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t j = base + u * kStep + slot;
      has[u] = j < j_end;
      kraw[u] = make_uint4(0, 0, 0, 0), vraw[u] = make_uint4(0, 0, 0, 0);
      if (has[u]) {
        kraw[u] = *reinterpret_cast<const uint4*>(kbase + j * row);
        vraw[u] = *reinterpret_cast<const uint4*>(vbase + j * row);
      }
    }
    float sc[U][G];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      float kf[8];
      unpack8<T>(kraw[u], kf);
#pragma unroll
      for (int g = 0; g < G; ++g) {
        float dot = 0;
#pragma unroll
        for (int e = 0; e < 8; ++e) dot += q[g][e] * kf[e];
#pragma unroll
        for (int o = kLanes / 2; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
        sc[u][g] = has[u] ? dot : -INFINITY;
      }
    }
#pragma unroll
    for (int g = 0; g < G; ++g) {
      float mx = m[g];
#pragma unroll
      for (int u = 0; u < U; ++u) mx = fmaxf(mx, sc[u][g]);
      const float correction = rescale(m[g], mx);
      l[g] *= correction;
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[g][e] *= correction;
#pragma unroll
      for (int u = 0; u < U; ++u) {
        sc[u][g] = rescale(sc[u][g], mx);
        l[g] += sc[u][g];
      }
      m[g] = mx;
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      float vf[8];
      unpack8<T>(vraw[u], vf);
#pragma unroll
      for (int g = 0; g < G; ++g)
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[g][e] += sc[u][g] * vf[e];
    }
  }
#pragma unroll
  for (int o = kLanes; o < 32; o <<= 1) {
#pragma unroll
    for (int g = 0; g < G; ++g) {
      const float mo = __shfl_xor_sync(0xffffffffu, m[g], o);
      const float lo = __shfl_xor_sync(0xffffffffu, l[g], o);
      const float mx = fmaxf(m[g], mo);
      const float ca = rescale(m[g], mx), cb = rescale(mo, mx);
      l[g] = l[g] * ca + lo * cb;
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        const float ao = __shfl_xor_sync(0xffffffffu, acc[g][e], o);
        acc[g][e] = acc[g][e] * ca + ao * cb;
      }
      m[g] = mx;
    }
  }
  if (sub == 0) {
#pragma unroll
    for (int g = 0; g < G; ++g) {
      float* mine = merge + (warp * G + g) * kWidth;
      if (part == 0) mine[0] = m[g], mine[1] = l[g];
#pragma unroll
      for (int e = 0; e < 8; ++e) mine[2 + part * 8 + e] = acc[g][e];
    }
  }
  __syncthreads();
  const int64_t width = 2 + D;
  T* out = static_cast<T*>(a.out) + (b * hq + kh * G) * D;
  float* head0 = a.partials + (b * hq + kh * G) * splits * width;
  for (int idx = threadIdx.x; idx < G * D; idx += kThreads) {
    const int g = idx / D, col = idx % D;
    float big = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) big = fmaxf(big, merge[(w * G + g) * kWidth]);
    float value = 0, sum = 0;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      const float* theirs = merge + (w * G + g) * kWidth;
      const float f = rescale(theirs[0], big);
      sum += theirs[1] * f;
      value += theirs[2 + col] * f;
    }
    if (active == 1) {
      out[g * D + col] = from_f<T>(bad ? NAN : value / sum);
    } else {
      float* pr = head0 + (g * splits + split) * width;
      if (col == 0) pr[0] = big, pr[1] = sum;
      pr[2 + col] = value;
    }
  }
  if (active == 1) return;
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    unsigned* counter = a.counters + b * hk + kh;
    const unsigned ticket = atomicAdd(counter, 1u);
    last = ticket == static_cast<unsigned>(active - 1);
    if (last) atomicExch(counter, 0u);
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  for (int g = warp; g < G; g += kWarps) {
    const float* rows = head0 + g * splits * width;
    float big = -INFINITY;
    for (int64_t sp = lane; sp < active; sp += 32) big = fmaxf(big, __ldcg(rows + sp * width));
    big = warp_max(big);
    float sum = 0;
    for (int64_t sp = lane; sp < active; sp += 32) {
      const float w = rescale(__ldcg(rows + sp * width), big);
      weight[g][sp] = w;
      sum += __ldcg(rows + sp * width + 1) * w;
    }
    sum = warp_sum(sum);
    if (lane == 0) total[g] = sum;
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < G * D; idx += kThreads) {
    const int g = idx / D, col = idx % D;
    const float* cells = head0 + g * splits * width + 2 + col;
    float value = 0;
    for (int64_t sp = 0; sp < active; ++sp) value += __ldcg(cells + sp * width) * weight[g][sp];
    out[g * D + col] = from_f<T>(value / total[g]);
  }
}

template <typename T, int D>
cudaError_t launch_group(const RopeAttentionArgs& a, cudaStream_t stream, bool pdl) {
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(static_cast<unsigned>(a.splits), static_cast<unsigned>(a.kv_heads),
                        static_cast<unsigned>(a.batch));
  config.blockDim = dim3(kThreads);
  config.stream = stream;
  cudaLaunchAttribute attribute[1];
  attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute[0].val.programmaticStreamSerializationAllowed = 1;
  if (pdl) config.attrs = attribute, config.numAttrs = 1;
  switch (a.q_heads / a.kv_heads) {
    case 1:
      return cudaLaunchKernelEx(&config, rope_attention<T, D, 1>, a);
    case 2:
      return cudaLaunchKernelEx(&config, rope_attention<T, D, 2>, a);
    case 4:
      return cudaLaunchKernelEx(&config, rope_attention<T, D, 4>, a);
    case 8:
      return cudaLaunchKernelEx(&config, rope_attention<T, D, 8>, a);
    default:
      return cudaErrorInvalidValue;
  }
}

template <typename T>
cudaError_t launch_typed(const RopeAttentionArgs& a, cudaStream_t stream, bool pdl) {
  if (a.head_dim == 64) return launch_group<T, 64>(a, stream, pdl);
  if (a.head_dim == 128) return launch_group<T, 128>(a, stream, pdl);
  return cudaErrorInvalidValue;
}

}  // namespace

bool rope_attention_supported(const RopeAttentionArgs& a, int element_bytes) {
  const int64_t group = a.kv_heads > 0 ? a.q_heads / a.kv_heads : 0;
  return element_bytes == 2 && (a.head_dim == 64 || a.head_dim == 128) && group >= 1 &&
         group <= 8 && (group & (group - 1)) == 0 && group * a.kv_heads == a.q_heads &&
         a.batch <= 65535 && a.heads_batch % 8 == 0 &&
         (reinterpret_cast<uintptr_t>(a.heads) & 15u) == 0 &&
         (reinterpret_cast<uintptr_t>(a.k_cache) & 15u) == 0 &&
         (reinterpret_cast<uintptr_t>(a.v_cache) & 15u) == 0;
}

int64_t rope_attention_splits(const RopeAttentionArgs& a, int sms) {
  const int64_t min_keys = (a.q_heads / a.kv_heads >= 8 ? 2 : 4) * 4 * (256 / a.head_dim);
  const int64_t blocks = a.kv_heads * a.batch;
  int64_t splits = std::min<int64_t>((4 * int64_t{sms} + blocks - 1) / blocks,
                                     (a.capacity + min_keys - 1) / min_keys);
  return std::max<int64_t>(1, std::min<int64_t>(splits, kMaxSplits));
}

const char* launch_rope_attention(const RopeAttentionArgs& a, bool bf16, int device,
                                  void* stream_handle) {
  if (a.batch <= 0) return "";
  if (a.splits < 1 || a.splits > kMaxSplits) return "bad split count for the fused attention";
  if (const char* error = use_cuda_device(device); *error) return error;
  auto stream = static_cast<cudaStream_t>(stream_handle);
  const bool pdl = pdl_enabled(device);
  cudaError_t status =
      bf16 ? launch_typed<__nv_bfloat16>(a, stream, pdl) : launch_typed<__half>(a, stream, pdl);
  return status == cudaSuccess ? "" : cudaGetErrorString(status);
}

}  // namespace flagstone::engine::detail
