// Softmax cross entropy kernels (ignore_index, label smoothing, mean/sum/none): one block per
// row of logits, one read of the row; included by llm.cu only.
#pragma once

#include <algorithm>
#include <type_traits>

#include "cuda/device_utils.cuh"
#include "cuda/kernels.h"

namespace flagstone::ops::cuda::ce {

// Default kernel variant (tuning_variant), the fastest correct one of session 12's first H200
// window at 8192 x 32000: 7 for 16-bit rows (cross_entropy_lean, 4 packs per thread: 100.5% of
// the copy of the same bytes in bf16, 101.2% f16, against 69.8 / 72.8% for the session-10
// kernel) and 6 for f32 (lean, 8 packs: 102.3%).
template <typename T>
constexpr int kCrossEntropyVariant = std::is_same_v<T, float> ? 6 : 7;

template <typename T>
__global__ void cross_entropy_rows(CrossEntropyArgs a) {
  __shared__ float scratch[32];
  const T* row = static_cast<const T*>(a.logits) + blockIdx.x * a.classes;
  int64_t target = load_index(a.target, a.target_i64, blockIdx.x);
  // One pass over the row: running max with a rescaled sum of exps, and the plain sum for label
  // smoothing; 16-byte loads when the row allows them.
  float m = -INFINITY, s = 0, sum = 0;
  auto take = [&](float v) {
    sum += v;
    if (v > m) {
      s = s * expf(m - v) + 1.0f;
      m = v;
    } else if (v != -INFINITY) {
      s += expf(v - m);
    }
  };
  constexpr int N = Pack<T>::kCount, U = 4;
  if (a.classes % N == 0 && aligned16(row)) {
    // U packs per thread in flight, then one rescale of the sum per group of U * N values (a
    // single exp per element instead of a compare-and-rescale per element).
    const int64_t packs = a.classes / N;
    for (int64_t base = threadIdx.x; base < packs; base += U * blockDim.x) {
      float v[U][N];
#pragma unroll
      for (int u = 0; u < U; ++u) {
        int64_t p = base + int64_t{u} * blockDim.x;
        if (p < packs) {
          load_pack(row + p * N, v[u]);
        } else {
#pragma unroll
          for (int j = 0; j < N; ++j) v[u][j] = -INFINITY;
        }
      }
      float group_max = m;
#pragma unroll
      for (int u = 0; u < U; ++u)
#pragma unroll
        for (int j = 0; j < N; ++j) {
          group_max = fmaxf(group_max, v[u][j]);
          if (base + int64_t{u} * blockDim.x < packs) sum += v[u][j];
        }
      if (group_max == -INFINITY) continue;
      s *= expf(m - group_max);
      // exp(v - max) as one FMA and the hardware exp2 (the accurate expf made this ALU-bound).
      const float ml = group_max * 1.4426950408889634f;
#pragma unroll
      for (int u = 0; u < U; ++u)
#pragma unroll
        for (int j = 0; j < N; ++j) s += exp2f(fmaf(v[u][j], 1.4426950408889634f, -ml));
      m = group_max;
    }
  } else {
    for (int64_t j = threadIdx.x; j < a.classes; j += blockDim.x) take(to_f(row[j]));
  }
  float row_max = block_reduce<true>(m, scratch);
  s = row_max == -INFINITY ? s : s * expf(m - row_max);
  m = row_max;
  s = block_reduce<false>(s, scratch);
  sum = block_reduce<false>(sum, scratch);
  if (threadIdx.x != 0) return;
  float loss, count = 1;
  if (target == a.ignore_index) {
    loss = 0, count = 0;
  } else if (target < 0 || target >= a.classes) {
    loss = NAN;
  } else {
    float lse = m + logf(s);
    float nll = lse - to_f(row[target]);
    float sum_logp = sum - static_cast<float>(a.classes) * lse;
    loss = (1 - a.label_smoothing) * nll -
           a.label_smoothing * sum_logp / static_cast<float>(a.classes);
  }
  if (a.reduction == 0) {
    static_cast<T*>(a.out)[blockIdx.x] = from_f<T>(loss);
  } else {
    a.losses[blockIdx.x] = loss;
    a.losses[a.rows + blockIdx.x] = count;
  }
}

// Max, rescaled sum of exps and plain sum (label smoothing) of a row, merged in one barrier.
struct CeAcc {
  float m, s, sum;
};
struct CeOp {
  static __device__ __forceinline__ CeAcc identity() { return {-INFINITY, 0.0f, 0.0f}; }
  static __device__ __forceinline__ CeAcc merge(CeAcc a, CeAcc b) {
    MaxSum r = MaxSumOp::merge({a.m, a.s}, {b.m, b.s});
    return {r.m, r.s, a.sum + b.sum};
  }
};

template <typename T>
__device__ void ce_finish(const CrossEntropyArgs& a, CeAcc r, int64_t target, float picked);

// One row per block with the whole row loaded at once (P packs per thread, streaming loads:
// the logits are read once), the target logit fetched alongside, one barrier.
template <typename T, int P, bool kStream>
__global__ void __launch_bounds__(P >= 16 ? 256 : 1024) cross_entropy_raw(CrossEntropyArgs a) {
  constexpr int N = Pack<T>::kCount;
  __shared__ CeAcc scratch[32];
  const uint32_t packs = static_cast<uint32_t>(a.classes / N);
  const T* row = static_cast<const T*>(a.logits) + size_t{blockIdx.x} * a.classes;
  uint4 raw[P];
  load_raw<P, kStream>(row, packs, raw);
  int64_t target = 0;
  float picked = 0;
  if (threadIdx.x == 0) {
    target = load_index(a.target, a.target_i64, blockIdx.x);
    if (target >= 0 && target < a.classes) picked = to_f(row[target]);
  }
  float m = -INFINITY, sum = 0;
#pragma unroll
  for (int k = 0; k < P; ++k) {
    if (!owns(k, packs)) continue;
    float v[N];
    unpack<T>(raw[k], v);
#pragma unroll
    for (int j = 0; j < N; ++j) m = fmaxf(m, v[j]), sum += v[j];
  }
  float s = 0, ml = m * kLog2e;
#pragma unroll
  for (int k = 0; k < P; ++k) {
    if (!owns(k, packs)) continue;
    float v[N];
    unpack<T>(raw[k], v);
#pragma unroll
    for (int j = 0; j < N; ++j) s += exp2f(fmaf(v[j], kLog2e, -ml));
  }
  CeAcc r = block_merge<CeOp>(CeAcc{m, m == -INFINITY ? 0.0f : s, sum}, scratch);
  if (threadIdx.x == 0) ce_finish<T>(a, r, target, picked);
}

// The row in registers as in cross_entropy_raw with fewer instructions per logit, which is what
// limits 16-bit rows (f32 rows of the raw kernel reach 97% of copy, bf16 69%): the max as
// 16-bit pairs, exp2 as the bare MUFU instruction (exp2_ftz: terms below 2^-126 of the max add
// nothing a float sum could hold), four independent partial sums, the plain sum of the logits
// only with label smoothing, and the max taken per warp before the exps so a warp's partial
// sums add plainly; only warp 0 merges the warps' (max, sum) pairs with rescaling.
template <typename T, int P, bool kSmooth>
__global__ void __launch_bounds__(P >= 16 ? 256 : 1024) cross_entropy_lean(CrossEntropyArgs a) {
  constexpr int N = Pack<T>::kCount;
  __shared__ CeAcc scratch[32];
  const uint32_t packs = static_cast<uint32_t>(a.classes / N);
  const T* row = static_cast<const T*>(a.logits) + size_t{blockIdx.x} * a.classes;
  uint4 raw[P];
  load_raw<P, true>(row, packs, raw);
  int64_t target = 0;
  float picked = 0;
  if (threadIdx.x == 0) {
    target = load_index(a.target, a.target_i64, blockIdx.x);
    if (target >= 0 && target < a.classes) picked = to_f(row[target]);
  }
  const float m = warp_max(packs_max<T, P>(raw, [&](int k) { return owns(k, packs); }));
  const float ml = m * kLog2e;
  float s[4] = {0, 0, 0, 0}, sum = 0;
#pragma unroll
  for (int k = 0; k < P; ++k) {
    if (!owns(k, packs)) continue;
    float v[N];
    unpack<T>(raw[k], v);
#pragma unroll
    for (int j = 0; j < N; ++j) {
      s[j & 3] += exp2_ftz(fmaf(v[j], kLog2e, -ml));
      if (kSmooth) sum += v[j];
    }
  }
  CeAcc acc{m, m == -INFINITY ? 0.0f : warp_sum((s[0] + s[1]) + (s[2] + s[3])),
            kSmooth ? warp_sum(sum) : 0.0f};
  const int warps = blockDim.x >> 5, lane = threadIdx.x & 31;
  if (warps > 1) {
    if (lane == 0) scratch[threadIdx.x >> 5] = acc;
    __syncthreads();
    if (threadIdx.x >= 32) return;
    acc = warp_merge<CeOp>(lane < warps ? scratch[lane] : CeOp::identity());
  }
  if (threadIdx.x == 0) ce_finish<T>(a, acc, target, picked);
}

// The same with the row copied into shared memory by cp.async: bytes in flight without
// registers, so three 64 KiB rows fit per SM.
template <typename T>
__global__ void __launch_bounds__(1024) cross_entropy_async(CrossEntropyArgs a) {
  constexpr int N = Pack<T>::kCount;
  extern __shared__ uint4 crow[];
  __shared__ CeAcc scratch[32];
  const uint32_t packs = static_cast<uint32_t>(a.classes / N);
  const T* row = static_cast<const T*>(a.logits) + size_t{blockIdx.x} * a.classes;
  for (uint32_t p = threadIdx.x; p < packs; p += blockDim.x)
    copy16_async(crow + p, row + size_t{p} * N);
  int64_t target = 0;
  float picked = 0;
  if (threadIdx.x == 0) {
    target = load_index(a.target, a.target_i64, blockIdx.x);
    if (target >= 0 && target < a.classes) picked = to_f(row[target]);
  }
  wait_async_copies();
  float m = -INFINITY, sum = 0;
  for (uint32_t p = threadIdx.x; p < packs; p += blockDim.x) {
    float v[N];
    unpack<T>(crow[p], v);
#pragma unroll
    for (int j = 0; j < N; ++j) m = fmaxf(m, v[j]), sum += v[j];
  }
  float s = 0, ml = m * kLog2e;
  for (uint32_t p = threadIdx.x; p < packs; p += blockDim.x) {
    float v[N];
    unpack<T>(crow[p], v);
#pragma unroll
    for (int j = 0; j < N; ++j) s += exp2f(fmaf(v[j], kLog2e, -ml));
  }
  CeAcc r = block_merge<CeOp>(CeAcc{m, m == -INFINITY ? 0.0f : s, sum}, scratch);
  if (threadIdx.x == 0) ce_finish<T>(a, r, target, picked);
}

// Thread 0 of a row's block: the row's loss from its merged statistics.
template <typename T>
__device__ void ce_finish(const CrossEntropyArgs& a, CeAcc r, int64_t target, float picked) {
  float loss, count = 1;
  if (target == a.ignore_index) {
    loss = 0, count = 0;
  } else if (target < 0 || target >= a.classes) {
    loss = NAN;
  } else {
    float lse = r.m + logf(r.s);
    float sum_logp = r.sum - static_cast<float>(a.classes) * lse;
    loss = (1 - a.label_smoothing) * (lse - picked) -
           a.label_smoothing * sum_logp / static_cast<float>(a.classes);
  }
  if (a.reduction == 0) {
    static_cast<T*>(a.out)[blockIdx.x] = from_f<T>(loss);
  } else {
    a.losses[blockIdx.x] = loss;
    a.losses[a.rows + blockIdx.x] = count;
  }
}

template <typename T>
__global__ void cross_entropy_reduce(CrossEntropyArgs a) {
  __shared__ float scratch[32];
  float total = 0, count = 0;
  // Unrolled so a thread's loads (8 each at 8192 rows) are in flight together rather than one
  // L2 round trip after another: this launch is on the critical path of every mean/sum call.
#pragma unroll 8
  for (int64_t i = threadIdx.x; i < a.rows; i += blockDim.x) {
    total += a.losses[i];
    count += a.losses[a.rows + i];
  }
  total = block_reduce<false>(total, scratch);
  count = block_reduce<false>(count, scratch);
  if (threadIdx.x == 0)
    static_cast<T*>(a.out)[0] = from_f<T>(a.reduction == 2 ? total : total / count);
}

template <typename T>
cudaError_t cross_entropy_typed(const CrossEntropyArgs& a, cudaStream_t stream) {
  if (a.rows == 0) {
    if (a.reduction != 0) {
      // torch: the mean of nothing is NaN, the sum is 0.
      cross_entropy_reduce<T><<<1, 32, 0, stream>>>(a);
    }
    return cudaGetLastError();
  }
  auto grid = static_cast<unsigned>(a.rows);
  constexpr int N = Pack<T>::kCount;
  int v = tuning_variant(kCrossEntropyVariant<T>);
  bool raw = v > 0 && a.classes % N == 0 && a.classes < (int64_t{1} << 31) &&
             (reinterpret_cast<uintptr_t>(a.logits) & 15u) == 0;
  int p = v == 2 || v == 7 ? 4 : v == 4 || v == 8 ? 16 : 8;
  int64_t t = (a.classes / N + p - 1) / p;
  t = (t + 31) / 32 * 32;
  size_t row_bytes = static_cast<size_t>(a.classes) * sizeof(T);
  if (raw && v == 5 && t <= 1024 && row_bytes <= 96 * 1024) {
    static bool attr = false;  // tuning only: one device
    if (!attr) {
      cudaFuncSetAttribute(cross_entropy_async<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                           96 * 1024);
      attr = true;
    }
    cross_entropy_async<T><<<grid, std::min<int>(static_cast<int>(t), 512), row_bytes, stream>>>(a);
  } else if (raw && t <= (p >= 16 ? 256 : 1024)) {
    int threads = static_cast<int>(t);
    const bool smooth = a.label_smoothing != 0;
    if (v >= 6 && v <= 8) {
      if (p == 16)
        smooth ? cross_entropy_lean<T, 16, true><<<grid, threads, 0, stream>>>(a)
               : cross_entropy_lean<T, 16, false><<<grid, threads, 0, stream>>>(a);
      else if (p == 4)
        smooth ? cross_entropy_lean<T, 4, true><<<grid, threads, 0, stream>>>(a)
               : cross_entropy_lean<T, 4, false><<<grid, threads, 0, stream>>>(a);
      else
        smooth ? cross_entropy_lean<T, 8, true><<<grid, threads, 0, stream>>>(a)
               : cross_entropy_lean<T, 8, false><<<grid, threads, 0, stream>>>(a);
    } else if (v == 2)
      cross_entropy_raw<T, 4, true><<<grid, threads, 0, stream>>>(a);
    else if (v == 3)
      cross_entropy_raw<T, 8, false><<<grid, threads, 0, stream>>>(a);
    else if (v == 4)
      cross_entropy_raw<T, 16, true><<<grid, threads, 0, stream>>>(a);
    else
      cross_entropy_raw<T, 8, true><<<grid, threads, 0, stream>>>(a);
  } else {
    int threads = a.classes >= 4096 ? 512 : a.classes >= 512 ? 256 : 64;
    cross_entropy_rows<T><<<grid, threads, 0, stream>>>(a);
  }
  if (a.reduction != 0) cross_entropy_reduce<T><<<1, 1024, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace flagstone::ops::cuda::ce
