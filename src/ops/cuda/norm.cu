// cuda native row kernels: softmax / log_softmax, rms_norm (optionally fused with the residual
// add) and layer_norm. One warp per row for norm rows up to 512 packs, else one block per row. Rows
// of whole 16-byte packs up to 8192 packs live in registers (read once, every load in flight
// together); other rows are read once into a shared f32 cache when they fit (12k elements), else
// re-read from global memory (L2).
#include <initializer_list>
#include <utility>

#include "cuda/device_utils.cuh"
#include "cuda/kernels.h"

namespace flagstone::ops::cuda {
namespace {

constexpr int64_t kCacheElements = 12288;
constexpr float kLog2e = 1.4426950408889634f;  // 48 KiB of f32: the default dynamic smem limit

// Calls f(i, value) for every element of the row that this thread owns. The split between
// threads is the same on every call, so a thread re-reads only what it cached itself.
template <typename T, typename F>
__device__ __forceinline__ void for_row(const T* row, int64_t n, bool packed, F f) {
  constexpr int N = Pack<T>::kCount;
  if (packed) {
    for (int64_t p = threadIdx.x; p < n / N; p += blockDim.x) {
      float v[N];
      load_pack(row + p * N, v);
#pragma unroll
      for (int j = 0; j < N; ++j) f(p * N + j, v[j]);
    }
  } else {
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) f(i, to_f(row[i]));
  }
}

// Same ownership as for_row, for a pass that produces one output per element.
template <typename T, typename F>
__device__ __forceinline__ void write_row(T* row, int64_t n, bool packed, F f) {
  constexpr int N = Pack<T>::kCount;
  if (packed) {
    for (int64_t p = threadIdx.x; p < n / N; p += blockDim.x) {
      float v[N];
#pragma unroll
      for (int j = 0; j < N; ++j) v[j] = f(p * N + j);
      store_pack(row + p * N, v);
    }
  } else {
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) row[i] = from_f<T>(f(i));
  }
}

template <typename T>
__device__ __forceinline__ bool row_packed(const T* a, const T* b, int64_t n) {
  return n % Pack<T>::kCount == 0 && aligned16(a) && aligned16(b);
}

template <typename T>
__global__ void softmax_kernel(T* out, const T* x, int64_t n, bool log, bool cached) {
  extern __shared__ float cache[];
  __shared__ float scratch[32];
  const T* xr = x + blockIdx.x * n;
  T* orow = out + blockIdx.x * n;
  bool packed = row_packed(xr, orow, n);
  // One pass: a running max and a sum rescaled whenever the max grows (online softmax).
  float m = -INFINITY, s = 0;
  for_row(xr, n, packed, [&](int64_t i, float v) {
    if (cached) cache[i] = v;
    if (v > m) {
      s = s * expf(m - v) + 1.0f;
      m = v;
    } else if (v != -INFINITY) {  // -inf adds nothing (and -inf - -inf would be NaN)
      s += expf(v - m);
    }
  });
  float row_max = block_reduce<true>(m, scratch);
  s = row_max == -INFINITY ? s : s * expf(m - row_max);
  m = row_max;
  auto value = [&](int64_t i) { return cached ? cache[i] : to_f(xr[i]); };
  s = block_reduce<false>(s, scratch);
  if (log) {
    float lse = m + logf(s);
    write_row(orow, n, packed, [&](int64_t i) { return value(i) - lse; });
  } else {
    float inv = 1.0f / s;
    write_row(orow, n, packed, [&](int64_t i) { return expf(value(i) - m) * inv; });
  }
}

template <typename T>
__global__ void rms_kernel(T* out, T* residual_out, const T* x, const T* residual, const T* w,
                           int64_t n, float eps, bool cached) {
  extern __shared__ float cache[];
  __shared__ float scratch[32];
  const T* xr = x + blockIdx.x * n;
  T* orow = out + blockIdx.x * n;
  bool packed = row_packed(xr, orow, n) && (!w || aligned16(w));
  const T* rr = residual ? residual + blockIdx.x * n : nullptr;
  T* ro = residual_out ? residual_out + blockIdx.x * n : nullptr;
  if (rr) packed = packed && aligned16(rr) && aligned16(ro);
  float ss = 0;
  auto value = [&](int64_t i) {
    if (cached) return cache[i];
    float v = to_f(xr[i]);
    // The fused path reads back what it stored, so the sum is rounded to T as in eager code.
    return rr ? to_f(ro[i]) : v;
  };
  if (rr) {
    // Writes x + residual (rounded to T) and accumulates from the rounded values.
    write_row(ro, n, packed, [&](int64_t i) {
      float v = to_f(from_f<T>(to_f(xr[i]) + to_f(rr[i])));
      if (cached) cache[i] = v;
      ss += v * v;
      return v;
    });
  } else {
    for_row(xr, n, packed, [&](int64_t i, float v) {
      if (cached) cache[i] = v;
      ss += v * v;
    });
  }
  ss = block_reduce<false>(ss, scratch);
  float scale = rsqrtf(ss / static_cast<float>(n) + eps);
  write_row(orow, n, packed, [&](int64_t i) { return value(i) * scale * (w ? to_f(w[i]) : 1.0f); });
}

template <typename T>
__global__ void layer_norm_kernel(T* out, const T* x, const T* w, const T* b, int64_t n, float eps,
                                  bool cached) {
  extern __shared__ float cache[];
  __shared__ float scratch[32];
  const T* xr = x + blockIdx.x * n;
  T* orow = out + blockIdx.x * n;
  bool packed = row_packed(xr, orow, n) && (!w || aligned16(w)) && (!b || aligned16(b));
  float s = 0;
  for_row(xr, n, packed, [&](int64_t i, float v) {
    if (cached) cache[i] = v;
    s += v;
  });
  float mean = block_reduce<false>(s, scratch) / static_cast<float>(n);
  auto value = [&](int64_t i) { return cached ? cache[i] : to_f(xr[i]); };
  float var = 0;
  if (packed) {
    constexpr int N = Pack<T>::kCount;
    for (int64_t p = threadIdx.x; p < n / N; p += blockDim.x)
      for (int j = 0; j < N; ++j) {
        float d = value(p * N + j) - mean;
        var += d * d;
      }
  } else {
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      float d = value(i) - mean;
      var += d * d;
    }
  }
  var = block_reduce<false>(var, scratch) / static_cast<float>(n);
  float rstd = rsqrtf(var + eps);
  write_row(orow, n, packed, [&](int64_t i) {
    return (value(i) - mean) * rstd * (w ? to_f(w[i]) : 1.0f) + (b ? to_f(b[i]) : 0.0f);
  });
}

// ---- register-resident rows: each thread holds up to P packs of its row as raw 16-byte words
// (half the registers of floats for f16/bf16, so two or more blocks share an SM and one block's
// reductions overlap another's loads), the row is read from memory once, and every load
// (weights included) is issued before the first reduction waits on them. Used when the row is a
// whole number of packs, aligned, and at most blockDim * P packs long.

// Loads this thread's packs (first + k * step; by default threadIdx.x + k * blockDim.x) that
// exist.
template <typename T, int P>
__device__ __forceinline__ void load_raw(const T* row, int64_t packs, uint4 (&v)[P], int first = -1,
                                         int step = 0) {
  if (first < 0) first = threadIdx.x, step = blockDim.x;
#pragma unroll
  for (int k = 0; k < P; ++k) {
    int64_t p = first + int64_t{k} * step;
    v[k] = p < packs ? *reinterpret_cast<const uint4*>(row + p * Pack<T>::kCount) : uint4{};
  }
}

template <typename T>
__device__ __forceinline__ void unpack(const uint4& raw, float (&out)[Pack<T>::kCount]) {
  const T* v = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int i = 0; i < Pack<T>::kCount; ++i) out[i] = to_f(v[i]);
}

// Writes f(k, j, value) for each element of this thread's existing packs (as load_raw).
template <typename T, int P, typename F>
__device__ __forceinline__ void store_raw(T* row, int64_t packs, const uint4 (&v)[P], F f,
                                          int first = -1, int step = 0) {
  constexpr int N = Pack<T>::kCount;
  if (first < 0) first = threadIdx.x, step = blockDim.x;
#pragma unroll
  for (int k = 0; k < P; ++k) {
    int64_t p = first + int64_t{k} * step;
    if (p >= packs) continue;
    float x[N];
    unpack<T>(v[k], x);
#pragma unroll
    for (int j = 0; j < N; ++j) x[j] = f(k, j, x[j]);
    store_pack(row + p * N, x);
  }
}

// Merges (max, sum of exp(x - max)) states; an empty state has max -inf and sum 0.
__device__ __forceinline__ void merge_softmax(float& m, float& s, float m2, float s2) {
  float mn = fmaxf(m, m2);
  if (mn == -INFINITY) return;
  s = s * expf(m - mn) + s2 * expf(m2 - mn);
  m = mn;
}

// Merges (count, mean, sum of squared deviations) states as Chan et al. do.
__device__ __forceinline__ void merge_moments(float& n, float& mean, float& m2, float n2,
                                              float mean2, float m22) {
  float total = n + n2;
  if (total == 0) return;
  float delta = mean2 - mean;
  mean += delta * (n2 / total);
  m2 += m22 + delta * delta * (n * n2 / total);
  n = total;
}

// Block-wide merge of a three-float state with `merge` (two-float states ignore c); every thread
// gets the result. `scratch` holds 32 float3.
template <typename Merge>
__device__ __forceinline__ void block_merge(float& a, float& b, float& c, float3* scratch,
                                            Merge merge) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    float a2 = __shfl_xor_sync(0xffffffffu, a, o), b2 = __shfl_xor_sync(0xffffffffu, b, o);
    float c2 = __shfl_xor_sync(0xffffffffu, c, o);
    merge(a, b, c, a2, b2, c2);
  }
  if (lane == 0) scratch[warp] = make_float3(a, b, c);
  __syncthreads();
  float3 first = scratch[0];
  a = first.x, b = first.y, c = first.z;
  for (int w = 1; w < warps; ++w) {
    float3 t = scratch[w];
    merge(a, b, c, t.x, t.y, t.z);
  }
}

template <typename T, int P>
__global__ void __launch_bounds__(512, 2) softmax_regs(T* out, const T* x, int64_t n, bool log) {
  constexpr int N = Pack<T>::kCount;
  __shared__ float3 scratch[32];
  const int64_t packs = n / N;
  uint4 v[P];
  load_raw<T, P>(x + blockIdx.x * n, packs, v);
  float m = -INFINITY, s = 0, unused = 0;
#pragma unroll
  for (int k = 0; k < P; ++k) {
    if (threadIdx.x + int64_t{k} * blockDim.x >= packs) continue;
    float f[N];
    unpack<T>(v[k], f);
#pragma unroll
    for (int j = 0; j < N; ++j) m = fmaxf(m, f[j]);
  }
  // exp(x - m) as one FMA and the hardware exp2: the row costs two exps per element, and the
  // accurate expf sequence made this kernel ALU-bound.
  if (m != -INFINITY) {
    const float ml = m * kLog2e;
#pragma unroll
    for (int k = 0; k < P; ++k) {
      if (threadIdx.x + int64_t{k} * blockDim.x >= packs) continue;
      float f[N];
      unpack<T>(v[k], f);
#pragma unroll
      for (int j = 0; j < N; ++j) s += exp2f(fmaf(f[j], kLog2e, -ml));
    }
  }
  block_merge(m, s, unused, scratch, [](float& m1, float& s1, float&, float m2, float s2, float) {
    merge_softmax(m1, s1, m2, s2);
  });
  float shift = m + logf(s), inv = 1.0f / s, ml = m * kLog2e;
  store_raw<T, P>(out + blockIdx.x * n, packs, v, [&](int, int, float f) {
    return log ? f - shift : exp2f(fmaf(f, kLog2e, -ml)) * inv;
  });
}

template <typename T, int P>
__global__ void __launch_bounds__(512)
    rms_regs(T* out, T* residual_out, const T* x, const T* residual, const T* w, int64_t n,
             float eps) {
  constexpr int N = Pack<T>::kCount;
  __shared__ float scratch[32];
  const int64_t packs = n / N;
  uint4 v[P], wv[P];
  load_raw<T, P>(x + blockIdx.x * n, packs, v);
  if (residual) {
    uint4 r[P];
    load_raw<T, P>(residual + blockIdx.x * n, packs, r);
    // The residual stream is kept in T: round the sum, store it, and normalize what was stored.
#pragma unroll
    for (int k = 0; k < P; ++k) {
      float a[N], b[N];
      unpack<T>(v[k], a);
      unpack<T>(r[k], b);
      T* packed = reinterpret_cast<T*>(&v[k]);
#pragma unroll
      for (int j = 0; j < N; ++j) packed[j] = from_f<T>(a[j] + b[j]);
    }
    store_raw<T, P>(residual_out + blockIdx.x * n, packs, v, [](int, int, float f) { return f; });
  }
  if (w) load_raw<T, P>(w, packs, wv);
  float ss = 0;
#pragma unroll
  for (int k = 0; k < P; ++k) {
    float f[N];
    unpack<T>(v[k], f);  // missing packs are zero bits: they add nothing
#pragma unroll
    for (int j = 0; j < N; ++j) ss += f[j] * f[j];
  }
  ss = block_reduce<false>(ss, scratch);
  float scale = rsqrtf(ss / static_cast<float>(n) + eps);
  store_raw<T, P>(out + blockIdx.x * n, packs, v, [&](int k, int j, float f) {
    float wf = 1.0f;
    if (w) wf = to_f(reinterpret_cast<const T*>(&wv[k])[j]);
    return f * scale * wf;
  });
}

template <typename T, int P>
__global__ void __launch_bounds__(512)
    layer_norm_regs(T* out, const T* x, const T* w, const T* b, int64_t n, float eps) {
  constexpr int N = Pack<T>::kCount;
  __shared__ float3 scratch[32];
  const int64_t packs = n / N;
  uint4 v[P], wv[P], bv[P];
  load_raw<T, P>(x + blockIdx.x * n, packs, v);
  if (w) load_raw<T, P>(w, packs, wv);
  if (b) load_raw<T, P>(b, packs, bv);
  // This thread's count, mean and squared deviations, then one merge over the block.
  float count = 0, sum = 0;
#pragma unroll
  for (int k = 0; k < P; ++k) {
    if (threadIdx.x + int64_t{k} * blockDim.x >= packs) continue;
    float f[N];
    unpack<T>(v[k], f);
    count += N;
#pragma unroll
    for (int j = 0; j < N; ++j) sum += f[j];
  }
  float mean = count > 0 ? sum / count : 0.0f, m2 = 0;
#pragma unroll
  for (int k = 0; k < P; ++k) {
    if (threadIdx.x + int64_t{k} * blockDim.x >= packs) continue;
    float f[N];
    unpack<T>(v[k], f);
#pragma unroll
    for (int j = 0; j < N; ++j) m2 += (f[j] - mean) * (f[j] - mean);
  }
  block_merge(count, mean, m2, scratch, merge_moments);
  float rstd = rsqrtf(m2 / static_cast<float>(n) + eps);
  store_raw<T, P>(out + blockIdx.x * n, packs, v, [&](int k, int j, float f) {
    float wf = w ? to_f(reinterpret_cast<const T*>(&wv[k])[j]) : 1.0f;
    float bf = b ? to_f(reinterpret_cast<const T*>(&bv[k])[j]) : 0.0f;
    return (f - mean) * rstd * wf + bf;
  });
}

// ---- warp-resident rows (at most 32 * P packs): one warp per row, four rows per block, so the
// reductions are shuffles with no block barrier and many rows are in flight on every SM. The
// weights are read in the store pass (they stay in L1/L2: every row uses them).
constexpr int kWarpRows = 4;

template <typename T, int P>
__global__ void __launch_bounds__(32 * kWarpRows)
    rms_warp(T* out, T* residual_out, const T* x, const T* residual, const T* w, int64_t rows,
             int64_t n, float eps) {
  constexpr int N = Pack<T>::kCount;
  const int64_t row = int64_t{blockIdx.x} * kWarpRows + (threadIdx.x >> 5);
  if (row >= rows) return;
  const int lane = threadIdx.x & 31;
  const int64_t packs = n / N;
  uint4 v[P];
  load_raw<T, P>(x + row * n, packs, v, lane, 32);
  if (residual) {
    uint4 r[P];
    load_raw<T, P>(residual + row * n, packs, r, lane, 32);
#pragma unroll
    for (int k = 0; k < P; ++k) {
      float a[N], b[N];
      unpack<T>(v[k], a);
      unpack<T>(r[k], b);
      T* packed = reinterpret_cast<T*>(&v[k]);
#pragma unroll
      for (int j = 0; j < N; ++j) packed[j] = from_f<T>(a[j] + b[j]);
    }
    store_raw<T, P>(
        residual_out + row * n, packs, v, [](int, int, float f) { return f; }, lane, 32);
  }
  float ss = 0;
#pragma unroll
  for (int k = 0; k < P; ++k) {
    float f[N];
    unpack<T>(v[k], f);
#pragma unroll
    for (int j = 0; j < N; ++j) ss += f[j] * f[j];
  }
  float scale = rsqrtf(warp_sum(ss) / static_cast<float>(n) + eps);
#pragma unroll
  for (int k = 0; k < P; ++k) {
    const int64_t p = lane + int64_t{32} * k;
    if (p >= packs) continue;
    float f[N], wf[N];
    unpack<T>(v[k], f);
    if (w) load_pack(w + p * N, wf);
#pragma unroll
    for (int j = 0; j < N; ++j) f[j] = f[j] * scale * (w ? wf[j] : 1.0f);
    store_pack(out + row * n + p * N, f);
  }
}

template <typename T, int P>
__global__ void __launch_bounds__(32 * kWarpRows)
    layer_norm_warp(T* out, const T* x, const T* w, const T* b, int64_t rows, int64_t n,
                    float eps) {
  constexpr int N = Pack<T>::kCount;
  const int64_t row = int64_t{blockIdx.x} * kWarpRows + (threadIdx.x >> 5);
  if (row >= rows) return;
  const int lane = threadIdx.x & 31;
  const int64_t packs = n / N;
  uint4 v[P];
  load_raw<T, P>(x + row * n, packs, v, lane, 32);
  float sum = 0;
#pragma unroll
  for (int k = 0; k < P; ++k) {
    float f[N];
    unpack<T>(v[k], f);  // missing packs are zero bits
#pragma unroll
    for (int j = 0; j < N; ++j) sum += f[j];
  }
  const float mean = warp_sum(sum) / static_cast<float>(n);
  float m2 = 0;
#pragma unroll
  for (int k = 0; k < P; ++k) {
    if (lane + 32 * k >= packs) continue;
    float f[N];
    unpack<T>(v[k], f);
#pragma unroll
    for (int j = 0; j < N; ++j) m2 += (f[j] - mean) * (f[j] - mean);
  }
  const float rstd = rsqrtf(warp_sum(m2) / static_cast<float>(n) + eps);
#pragma unroll
  for (int k = 0; k < P; ++k) {
    const int64_t p = lane + int64_t{32} * k;
    if (p >= packs) continue;
    float f[N], wf[N], bf[N];
    unpack<T>(v[k], f);
    if (w) load_pack(w + p * N, wf);
    if (b) load_pack(b + p * N, bf);
#pragma unroll
    for (int j = 0; j < N; ++j)
      f[j] = (f[j] - mean) * rstd * (w ? wf[j] : 1.0f) + (b ? bf[j] : 0.0f);
    store_pack(out + row * n + p * N, f);
  }
}

// Packs per lane (8 or 16) of the warp path for rows of n, or 0 when the row does not fit
// or is not whole aligned packs.
template <typename T>
int warp_plan(int64_t n, std::initializer_list<const void*> pointers) {
  constexpr int N = Pack<T>::kCount;
  if (n % N != 0) return 0;
  for (const void* p : pointers)
    if (p && (reinterpret_cast<uintptr_t>(p) & 15u) != 0) return 0;
  int64_t packs = n / N;
  return packs <= 32 * 8 ? 8 : packs <= 32 * 16 ? 16 : 0;
}

// Launch shape of the register path for rows of n: packs per thread (4, or 8 when max_per
// allows) and threads (at most 512, so the registers fit), or {0, 0} when the row does not fit.
template <typename T>
std::pair<int, int> regs_plan(int64_t n, int max_per, std::initializer_list<const void*> pointers) {
  constexpr int N = Pack<T>::kCount;
  if (n % N != 0) return {0, 0};
  for (const void* p : pointers)
    if (p && (reinterpret_cast<uintptr_t>(p) & 15u) != 0) return {0, 0};
  int64_t packs = n / N;
  for (int per : {4, 8}) {
    if (per > max_per) break;
    int64_t threads = (packs + per - 1) / per;
    threads = (threads + 31) / 32 * 32;
    if (threads <= 512) return {per, static_cast<int>(threads)};
  }
  return {0, 0};
}

// Threads per row: enough that each owns about four 16-byte packs, 32..1024.
template <typename T>
int row_threads(int64_t n) {
  int threads = 32;
  while (threads < 1024 && int64_t{threads} * Pack<T>::kCount * 4 < n) threads *= 2;
  return threads;
}

size_t cache_bytes(int64_t n) {
  return n <= kCacheElements ? static_cast<size_t>(n) * sizeof(float) : 0;
}

template <typename T>
cudaError_t softmax_typed(void* out, const void* x, int64_t rows, int64_t n, bool log,
                          cudaStream_t stream) {
  if (rows == 0 || n == 0) return cudaSuccess;
  auto grid = static_cast<unsigned>(rows);
  auto [per, threads] = regs_plan<T>(n, 8, {out, x});
  if (per == 4)
    softmax_regs<T, 4>
        <<<grid, threads, 0, stream>>>(static_cast<T*>(out), static_cast<const T*>(x), n, log);
  if (per == 8)
    softmax_regs<T, 8>
        <<<grid, threads, 0, stream>>>(static_cast<T*>(out), static_cast<const T*>(x), n, log);
  if (per != 0) return cudaGetLastError();
  size_t smem = cache_bytes(n);
  softmax_kernel<T><<<static_cast<unsigned>(rows), row_threads<T>(n), smem, stream>>>(
      static_cast<T*>(out), static_cast<const T*>(x), n, log, smem > 0);
  return cudaGetLastError();
}

template <typename T>
cudaError_t rms_typed(void* out, void* residual_out, const void* x, const void* residual,
                      const void* weight, int64_t rows, int64_t n, float eps, cudaStream_t stream) {
  if (rows == 0 || n == 0) return cudaSuccess;
  auto grid = static_cast<unsigned>(rows);
  auto* o = static_cast<T*>(out);
  auto* ro = static_cast<T*>(residual_out);
  auto* xi = static_cast<const T*>(x);
  auto* ri = static_cast<const T*>(residual);
  auto* wi = static_cast<const T*>(weight);
  int lanes = warp_plan<T>(n, {out, residual_out, x, residual, weight});
  auto warp_grid = static_cast<unsigned>((rows + kWarpRows - 1) / kWarpRows);
  if (lanes == 8)
    rms_warp<T, 8><<<warp_grid, 32 * kWarpRows, 0, stream>>>(o, ro, xi, ri, wi, rows, n, eps);
  if (lanes == 16)
    rms_warp<T, 16><<<warp_grid, 32 * kWarpRows, 0, stream>>>(o, ro, xi, ri, wi, rows, n, eps);
  if (lanes != 0) return cudaGetLastError();
  auto [per, threads] = regs_plan<T>(n, 4, {out, residual_out, x, residual, weight});
  if (per == 4) rms_regs<T, 4><<<grid, threads, 0, stream>>>(o, ro, xi, ri, wi, n, eps);
  if (per != 0) return cudaGetLastError();
  size_t smem = cache_bytes(n);
  rms_kernel<T><<<static_cast<unsigned>(rows), row_threads<T>(n), smem, stream>>>(
      static_cast<T*>(out), static_cast<T*>(residual_out), static_cast<const T*>(x),
      static_cast<const T*>(residual), static_cast<const T*>(weight), n, eps, smem > 0);
  return cudaGetLastError();
}

template <typename T>
cudaError_t layer_norm_typed(void* out, const void* x, const void* weight, const void* bias,
                             int64_t rows, int64_t n, float eps, cudaStream_t stream) {
  if (rows == 0 || n == 0) return cudaSuccess;
  auto grid = static_cast<unsigned>(rows);
  auto* o = static_cast<T*>(out);
  auto* xi = static_cast<const T*>(x);
  auto* wi = static_cast<const T*>(weight);
  auto* bi = static_cast<const T*>(bias);
  int lanes = warp_plan<T>(n, {out, x, weight, bias});
  auto warp_grid = static_cast<unsigned>((rows + kWarpRows - 1) / kWarpRows);
  if (lanes == 8)
    layer_norm_warp<T, 8><<<warp_grid, 32 * kWarpRows, 0, stream>>>(o, xi, wi, bi, rows, n, eps);
  if (lanes == 16)
    layer_norm_warp<T, 16><<<warp_grid, 32 * kWarpRows, 0, stream>>>(o, xi, wi, bi, rows, n, eps);
  if (lanes != 0) return cudaGetLastError();
  auto [per, threads] = regs_plan<T>(n, 4, {out, x, weight, bias});
  if (per == 4) layer_norm_regs<T, 4><<<grid, threads, 0, stream>>>(o, xi, wi, bi, n, eps);
  if (per != 0) return cudaGetLastError();
  size_t smem = cache_bytes(n);
  layer_norm_kernel<T><<<static_cast<unsigned>(rows), row_threads<T>(n), smem, stream>>>(
      static_cast<T*>(out), static_cast<const T*>(x), static_cast<const T*>(weight),
      static_cast<const T*>(bias), n, eps, smem > 0);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_softmax(DType dtype, void* out, const void* x, int64_t rows, int64_t n, bool log,
                           cudaStream_t stream) {
  switch (dtype) {
    case DType::kF32:
      return softmax_typed<float>(out, x, rows, n, log, stream);
    case DType::kF16:
      return softmax_typed<__half>(out, x, rows, n, log, stream);
    case DType::kBF16:
      return softmax_typed<__nv_bfloat16>(out, x, rows, n, log, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

cudaError_t launch_rms_norm(DType dtype, void* out, void* residual_out, const void* x,
                            const void* residual, const void* weight, int64_t rows, int64_t n,
                            float eps, cudaStream_t stream) {
  switch (dtype) {
    case DType::kF32:
      return rms_typed<float>(out, residual_out, x, residual, weight, rows, n, eps, stream);
    case DType::kF16:
      return rms_typed<__half>(out, residual_out, x, residual, weight, rows, n, eps, stream);
    case DType::kBF16:
      return rms_typed<__nv_bfloat16>(out, residual_out, x, residual, weight, rows, n, eps, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

cudaError_t launch_layer_norm(DType dtype, void* out, const void* x, const void* weight,
                              const void* bias, int64_t rows, int64_t n, float eps,
                              cudaStream_t stream) {
  switch (dtype) {
    case DType::kF32:
      return layer_norm_typed<float>(out, x, weight, bias, rows, n, eps, stream);
    case DType::kF16:
      return layer_norm_typed<__half>(out, x, weight, bias, rows, n, eps, stream);
    case DType::kBF16:
      return layer_norm_typed<__nv_bfloat16>(out, x, weight, bias, rows, n, eps, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace flagstone::ops::cuda
