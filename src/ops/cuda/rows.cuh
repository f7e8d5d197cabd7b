// Row kernels that hold their row as raw 16-byte packs in registers (softmax, rms_norm,
// layer_norm) or in shared memory (softmax through cp.async), and the launcher of the grouped
// norm kernel; included by norm.cu only.
#pragma once

#include "cuda/device_utils.cuh"
#include "cuda/pdl.cuh"

namespace flagstone::ops::cuda::rows {

// Most threads per block of the rms/layer_norm kernels holding P packs per thread (and so the
// register budget the compiler gets: 64K / threads).
constexpr int norm_max_threads(int p) {
  return p <= 2 ? 1024 : p == 4 ? 512 : 256;
}

// softmax / log_softmax of one row per block: one read, one barrier (the max and the rescaled
// sum merge together), one write; exp as FMA + exp2.
// kLean: the max of 16-bit rows as pairs, the MUFU exp2 (exp2_ftz) and, for 16-bit outputs,
// 1/sum folded into the exponent (exp2(x log2e - max log2e - log2 sum)): fewer instructions per
// element, which is what limits 16-bit rows (two exps per element).
template <typename T, int P, bool kStream, bool kLean = false>
__global__ void __launch_bounds__(P >= 16 ? 256 : 1024)
    softmax_raw(T* out, const T* x, uint32_t n, bool log) {
  constexpr int N = Pack<T>::kCount;
  __shared__ MaxSum scratch[32];
  __shared__ float lean_scratch[2][32];
  const uint32_t packs = n / N;
  const size_t base = size_t{blockIdx.x} * n;
  uint4 raw[P];
  load_raw<P, kStream>(x + base, packs, raw);
  auto ex2 = [](float v) { return kLean ? exp2_ftz(v) : exp2f(v); };
  float m = packs_max<T, P>(raw, [&](int k) { return owns(k, packs); });
  // kLean: the row max first (two plain reductions and barriers instead of a merge with two
  // exps per step, which costs a thread more than a quarter of its 64 elements' work).
  if (kLean) m = block_reduce_once<true>(m, lean_scratch[0]);
  float s = 0, ml = m * kLog2e;
#pragma unroll
  for (int k = 0; k < P; ++k) {
    if (!owns(k, packs)) continue;
    float v[N];
    unpack<T>(raw[k], v);
#pragma unroll
    for (int j = 0; j < N; ++j) s += ex2(fmaf(v[j], kLog2e, -ml));
  }
  MaxSum r = kLean ? MaxSum{m, block_reduce_once<false>(s, lean_scratch[1])}
                   : block_merge<MaxSumOp>(MaxSum{m, m == -INFINITY ? 0.0f : s}, scratch);
  // An all -inf row has max -inf: exp2(-inf + inf) is NaN, as in eager PyTorch.
  const float rl = r.m * kLog2e, inv = 1.0f / r.s, shift = r.m + logf(r.s);
  const float rls = rl + log2f(r.s);
#pragma unroll
  for (int k = 0; k < P; ++k) {
    if (!owns(k, packs)) continue;
    float v[N];
    unpack<T>(raw[k], v);
    if (log) {
#pragma unroll
      for (int j = 0; j < N; ++j) v[j] -= shift;
    } else if (kLean && sizeof(T) == 2) {
      // Folding log2(sum) into the exponent costs an ulp of |max log2e| (2^-14 relative at a
      // max of 1000): within 16-bit outputs' rounding, not within f32's.
#pragma unroll
      for (int j = 0; j < N; ++j) v[j] = exp2_ftz(fmaf(v[j], kLog2e, -rls));
    } else {
#pragma unroll
      for (int j = 0; j < N; ++j) v[j] = exp2f(fmaf(v[j], kLog2e, -rl)) * inv;
    }
    raw[k] = pack<T>(v);
  }
  store_raw<P, kStream>(out + base, packs, raw);
}

// softmax with the row copied into shared memory by cp.async: the bytes in flight are not
// limited by registers. Each thread reads back only the packs it copied, so the copy needs no
// barrier.
template <typename T, bool kFast>
__global__ void __launch_bounds__(1024) softmax_smem(T* out, const T* x, uint32_t n, bool log) {
  constexpr int N = Pack<T>::kCount;
  extern __shared__ uint4 row[];
  __shared__ MaxSum scratch[32];
  const uint32_t packs = n / N;
  const size_t base = size_t{blockIdx.x} * n;
  auto ex2 = [](float v) { return kFast ? exp2_ftz(v) : exp2f(v); };
  for (uint32_t p = threadIdx.x; p < packs; p += blockDim.x)
    copy16_async(row + p, x + base + size_t{p} * N);
  wait_async_copies();
  float m = -INFINITY;
  for (uint32_t p = threadIdx.x; p < packs; p += blockDim.x) {
    float v[N];
    unpack<T>(row[p], v);
#pragma unroll
    for (int j = 0; j < N; ++j) m = fmaxf(m, v[j]);
  }
  float s = 0, ml = m * kLog2e;
  for (uint32_t p = threadIdx.x; p < packs; p += blockDim.x) {
    float v[N];
    unpack<T>(row[p], v);
#pragma unroll
    for (int j = 0; j < N; ++j) s += ex2(fmaf(v[j], kLog2e, -ml));
  }
  MaxSum r = block_merge<MaxSumOp>(MaxSum{m, m == -INFINITY ? 0.0f : s}, scratch);
  const float rl = r.m * kLog2e, inv = 1.0f / r.s;
  const float shift = r.m + logf(r.s);
  for (uint32_t p = threadIdx.x; p < packs; p += blockDim.x) {
    float v[N];
    unpack<T>(row[p], v);
#pragma unroll
    for (int j = 0; j < N; ++j) v[j] = log ? v[j] - shift : ex2(fmaf(v[j], kLog2e, -rl)) * inv;
    store16<true>(out + base + size_t{p} * N, pack<T>(v));
  }
}

// rms_norm (optionally fused with the residual add) with the row in registers; the weight is
// loaded before the reduction (kPrefetch) so its latency hides behind the barrier.
template <typename T, int P, bool kPrefetch>
__global__ void __launch_bounds__(norm_max_threads(P))
    rms_raw(T* out, T* residual_out, const T* x, const T* residual, const T* w, uint32_t n,
            float eps) {
  constexpr int N = Pack<T>::kCount;
  __shared__ float scratch[32];
  const uint32_t packs = n / N;
  const size_t base = size_t{blockIdx.x} * n;
  uint4 raw[P], wr[P];
  load_raw<P, false>(x + base, packs, raw);
  if (residual) {
    uint4 rr[P];
    load_raw<P, false>(residual + base, packs, rr);
    // The residual stream is kept in T: round the sum, store it, and normalize what was stored.
#pragma unroll
    for (int k = 0; k < P; ++k) {
      if (!owns(k, packs)) continue;
      float v[N], r[N];
      unpack<T>(raw[k], v);
      unpack<T>(rr[k], r);
#pragma unroll
      for (int j = 0; j < N; ++j) v[j] += r[j];
      raw[k] = pack<T>(v);
    }
    store_raw<P, false>(residual_out + base, packs, raw);
  }
  if (kPrefetch && w) load_raw<P, false>(w, packs, wr);
  float ss = 0;
#pragma unroll
  for (int k = 0; k < P; ++k) {
    if (!owns(k, packs)) continue;
    float v[N];
    unpack<T>(raw[k], v);
#pragma unroll
    for (int j = 0; j < N; ++j) ss = fmaf(v[j], v[j], ss);
  }
  ss = block_merge<SumOp>(ss, scratch);
  const float scale = rsqrtf(ss / static_cast<float>(n) + eps);
  if (!kPrefetch && w) load_raw<P, false>(w, packs, wr);
#pragma unroll
  for (int k = 0; k < P; ++k) {
    if (!owns(k, packs)) continue;
    float v[N], wv[N];
    unpack<T>(raw[k], v);
    if (w) unpack<T>(wr[k], wv);
#pragma unroll
    for (int j = 0; j < N; ++j) v[j] = v[j] * scale * (w ? wv[j] : 1.0f);
    raw[k] = pack<T>(v);
  }
  store_raw<P, false>(out + base, packs, raw);
}

// rms_norm / layer_norm with the row copied into shared memory by cp.async (P packs per thread
// in flight without holding registers, so more blocks fit per SM); each thread reads back only
// the packs it copied; one barrier (rms_norm) or two (layer_norm: mean, then squared deviations
// around it). No residual (the launcher uses rms_raw for the fused add).
template <typename T, int P, bool kLayer, bool kPrefetch = true>
__global__ void __launch_bounds__(512)
    norm_async(T* out, const T* x, const T* w, const T* b, uint32_t n, float eps) {
  constexpr int N = Pack<T>::kCount;
  extern __shared__ uint4 srow[];
  __shared__ float scratch[2][32];
  const uint32_t packs = n / N;
  const size_t base = size_t{blockIdx.x} * n;
#pragma unroll
  for (int k = 0; k < P; ++k) {
    uint32_t p = threadIdx.x + k * blockDim.x;
    if (p < packs) copy16_async(srow + p, x + base + size_t{p} * N);
  }
  const float shift = kLayer ? to_f(x[base]) : 0.0f;
  uint4 wr[P], br[P];
  if (kPrefetch && w) load_raw<P, false>(w, packs, wr);
  if (kPrefetch && kLayer && b) load_raw<P, false>(b, packs, br);
  wait_async_copies();
  // layer_norm: two plain sums around the row's first element (shift), as norm_group does.
  float sum = 0;
#pragma unroll
  for (int k = 0; k < P; ++k) {
    if (!owns(k, packs)) continue;
    float v[N];
    unpack<T>(srow[threadIdx.x + k * blockDim.x], v);
#pragma unroll
    for (int j = 0; j < N; ++j) sum += kLayer ? v[j] - shift : v[j] * v[j];
  }
  float mean = 0, scale;
  if (kLayer) {
    mean = block_reduce_once<false>(sum, scratch[0]) / static_cast<float>(n);
    float m2 = 0;
#pragma unroll
    for (int k = 0; k < P; ++k) {
      if (!owns(k, packs)) continue;
      float v[N];
      unpack<T>(srow[threadIdx.x + k * blockDim.x], v);
#pragma unroll
      for (int j = 0; j < N; ++j) {
        const float d = (v[j] - shift) - mean;
        m2 = fmaf(d, d, m2);
      }
    }
    scale = rsqrtf(block_reduce_once<false>(m2, scratch[1]) / static_cast<float>(n) + eps);
  } else {
    scale = rsqrtf(block_reduce_once<false>(sum, scratch[0]) / static_cast<float>(n) + eps);
  }
  if (!kPrefetch && w) load_raw<P, false>(w, packs, wr);
  if (!kPrefetch && kLayer && b) load_raw<P, false>(b, packs, br);
#pragma unroll
  for (int k = 0; k < P; ++k) {
    if (!owns(k, packs)) continue;
    float v[N], wv[N], bv[N];
    unpack<T>(srow[threadIdx.x + k * blockDim.x], v);
    if (w) unpack<T>(wr[k], wv);
    if (kLayer && b) unpack<T>(br[k], bv);
#pragma unroll
    for (int j = 0; j < N; ++j)
      v[j] = ((v[j] - shift) - mean) * scale * (w ? wv[j] : 1.0f) + (kLayer && b ? bv[j] : 0.0f);
    store16<false>(out + base + size_t{threadIdx.x + k * blockDim.x} * N, pack<T>(v));
  }
}

// Sum over the `width` threads (32 * 2^k, whole warps) that share a row; every one of them gets
// it. `scratch` holds a float per warp of the block and serves one call.
__device__ __forceinline__ float group_sum(float v, int width, float* scratch) {
  v = warp_sum(v);
  if (width == 32) return v;
  const int warp = threadIdx.x >> 5, first = warp & ~((width >> 5) - 1);
  if ((threadIdx.x & 31) == 0) scratch[warp] = v;
  __syncthreads();
  float r = 0;
  for (int i = 0; i < width >> 5; ++i) r += scratch[first + i];
  return r;
}

// rms_norm (optionally fused with the residual add) and layer_norm of several rows per block:
// `width` threads (one warp up to eight) per row hold its P packs as raw registers, every load
// issued before the first is used. With one warp per row the reductions are shuffles only (no
// barrier, no shared memory), so a row of 4096 bf16 costs 128 elements of work per thread
// against ten shuffles. layer_norm takes the mean first and then the squared deviations from it
// (exact two-pass variance from registers, no E[x^2] - E[x]^2 cancellation); weight and bias
// are read at the end (the same packs for every row, so L1 hits). kResidual (rms only): x +
// residual is stored to residual_out and normalized.
template <typename T, int P, bool kLayer, bool kResidual = false>
__global__ void __launch_bounds__(256, 2)
    norm_group(T* out, T* residual_out, const T* x, const T* residual, const T* w, const T* b,
               uint32_t rows, uint32_t n, int width, float eps) {
  constexpr int N = Pack<T>::kCount;
  __shared__ float scratch[2][8];
  const uint32_t sub = threadIdx.x & (width - 1);
  const uint32_t row = blockIdx.x * (blockDim.x / width) + threadIdx.x / width;
  const uint32_t packs = row < rows ? n / N : 0;  // rows past the end own nothing
  const size_t base = size_t{row} * n;
  auto mine = [&](int k) { return sub + k * width < packs; };
  auto at = [&](int k) { return base + size_t{sub + k * width} * N; };
  // Launched with PDL (a decode step's one-row norms): wait for the kernel that wrote x.
  allow_next_kernel();
  wait_for_previous_kernel();
  uint4 raw[P];
#pragma unroll
  for (int k = 0; k < P; ++k)
    if (mine(k)) raw[k] = load16<false>(x + at(k));
  if (kResidual) {
    uint4 rr[P];
#pragma unroll
    for (int k = 0; k < P; ++k)
      if (mine(k)) rr[k] = load16<false>(residual + at(k));
        // The residual stream is kept in T: round the sum, store it, and normalize what was stored.
#pragma unroll
    for (int k = 0; k < P; ++k) {
      if (!mine(k)) continue;
      float v[N], r[N];
      unpack<T>(raw[k], v);
      unpack<T>(rr[k], r);
#pragma unroll
      for (int j = 0; j < N; ++j) v[j] += r[j];
      raw[k] = pack<T>(v);
      store16<false>(residual_out + at(k), raw[k]);
    }
  }
  // With few packs per thread (the one-row norms of a decode step, spread over more warps) the
  // weight and bias loads go out now, beside x's, not in a dependent round trip at the end.
  constexpr bool kAffineFirst = P <= 2;
  uint4 w_raw[kAffineFirst ? P : 1], b_raw[kAffineFirst ? P : 1];
  if constexpr (kAffineFirst) {
#pragma unroll
    for (int k = 0; k < P; ++k) {
      if (!mine(k)) continue;
      const uint32_t c = (sub + k * width) * N;
      if (w) w_raw[k] = __ldg(reinterpret_cast<const uint4*>(w + c));
      if (kLayer && b) b_raw[k] = __ldg(reinterpret_cast<const uint4*>(b + c));
    }
  }
  const float inv_n = 1.0f / static_cast<float>(n);
  // layer_norm centres on the row's first element before summing (shift): the sum of x - shift
  // and its mean are small, so x - shift - mean keeps the bits that x - mean, with mean rounded
  // near |x|, loses (rows far from zero with a bias that cancels the normalized value).
  const float shift = kLayer && packs > 0 ? to_f(x[base]) : 0.0f;
  float mean = 0;
  if (kLayer) {
    float s = 0;
#pragma unroll
    for (int k = 0; k < P; ++k) {
      if (!mine(k)) continue;
      float v[N];
      unpack<T>(raw[k], v);
#pragma unroll
      for (int j = 0; j < N; ++j) s += v[j] - shift;
    }
    mean = group_sum(s, width, scratch[0]) * inv_n;
  }
  float q = 0;
#pragma unroll
  for (int k = 0; k < P; ++k) {
    if (!mine(k)) continue;
    float v[N];
    unpack<T>(raw[k], v);
#pragma unroll
    for (int j = 0; j < N; ++j) {
      const float d = (v[j] - shift) - mean;
      q = fmaf(d, d, q);
    }
  }
  const float scale = rsqrtf(group_sum(q, width, scratch[1]) * inv_n + eps);
#pragma unroll
  for (int k = 0; k < P; ++k) {
    if (!mine(k)) continue;
    const uint32_t c = (sub + k * width) * N;
    float v[N], wv[N], bv[N];
    unpack<T>(raw[k], v);
    if (w) unpack<T>(kAffineFirst ? w_raw[k] : __ldg(reinterpret_cast<const uint4*>(w + c)), wv);
    if (kLayer && b)
      unpack<T>(kAffineFirst ? b_raw[k] : __ldg(reinterpret_cast<const uint4*>(b + c)), bv);
#pragma unroll
    for (int j = 0; j < N; ++j)
      v[j] = ((v[j] - shift) - mean) * scale * (w ? wv[j] : 1.0f) + (kLayer && b ? bv[j] : 0.0f);
    store16<false>(out + at(k), pack<T>(v));
  }
}

// norm_group with p (2, 4, 8 or 16; at most 8 with a residual, whose packs are held too)
// packs per thread and the fewest warps per row (up to eight) that hold the row; false (nothing
// launched) when the row is not whole aligned packs or needs more.
template <typename T, bool kLayer>
bool launch_norm_group(int p, T* o, T* ro, const T* x, const T* r, const T* w, const T* b,
                       int64_t rows, int64_t n, float eps, cudaStream_t stream) {
  constexpr int N = Pack<T>::kCount;
  if (n % N != 0 || n >= (int64_t{1} << 31)) return false;
  for (const void* ptr :
       {static_cast<const void*>(o), static_cast<const void*>(ro), static_cast<const void*>(x),
        static_cast<const void*>(r), static_cast<const void*>(w), static_cast<const void*>(b)})
    if (ptr && (reinterpret_cast<uintptr_t>(ptr) & 15u) != 0) return false;
  int width = 32;
  while (int64_t{width} * p < n / N && width < 256) width *= 2;
  if (int64_t{width} * p < n / N) return false;
  const int64_t per_block = 256 / width;
  const auto grid = static_cast<unsigned>((rows + per_block - 1) / per_block);
  const auto ur = static_cast<uint32_t>(rows);
  const auto un = static_cast<uint32_t>(n);
  const dim3 blocks(grid), threads(256);
  cudaError_t e;
  if (!kLayer && r && p == 2)
    e = launch_with_pdl(norm_group<T, 2, false, true>, blocks, threads, 0, stream, o, ro, x, r, w,
                        b, ur, un, width, eps);
  else if (!kLayer && p == 2)
    e = launch_with_pdl(norm_group<T, 2, false>, blocks, threads, 0, stream, o, ro, x, r, w, b, ur,
                        un, width, eps);
  else if (!kLayer && r && p == 8)
    e = launch_with_pdl(norm_group<T, 8, false, true>, blocks, threads, 0, stream, o, ro, x, r, w,
                        b, ur, un, width, eps);
  else if (!kLayer && r)
    e = launch_with_pdl(norm_group<T, 4, false, true>, blocks, threads, 0, stream, o, ro, x, r, w,
                        b, ur, un, width, eps);
  else if (p == 16)
    e = launch_with_pdl(norm_group<T, 16, kLayer>, blocks, threads, 0, stream, o, ro, x, r, w, b,
                        ur, un, width, eps);
  else if (p == 8)
    e = launch_with_pdl(norm_group<T, 8, kLayer>, blocks, threads, 0, stream, o, ro, x, r, w, b, ur,
                        un, width, eps);
  else
    e = launch_with_pdl(norm_group<T, 4, kLayer>, blocks, threads, 0, stream, o, ro, x, r, w, b, ur,
                        un, width, eps);
  (void)e;  // the caller reads launch errors with cudaGetLastError, as after <<<>>>
  return true;
}

}  // namespace flagstone::ops::cuda::rows
