// cuda native token sampler (temperature, top-k up to 1024, top-p after top-k, min-p) with the
// reference's semantics and seeded Philox stream: one block per row finds the top-k candidates
// by radix select on the logits' bit patterns, sorts them in shared memory, and applies the
// filters and the inverse-CDF walk in double, in the reference's order, on one thread. Without
// top-k the kept set is an edge key (top-p: searched on float masses, settled in double) and a
// min-p threshold, and the walk is a block-wide scan. multinomial walks the same way.
#include <cstdint>

#include "cuda/device_utils.cuh"
#include "cuda/kernels.h"

namespace flagstone::ops::cuda {
namespace {

constexpr int kThreads = 1024;
constexpr int kMaxTopK = 1024;

// Philox-4x32-10 and the uniform draw of flagstone/ops/random.h, on the device.
__device__ float uniform_at(uint64_t seed, uint64_t offset, uint64_t index) {
  uint64_t block = index / 4;
  uint32_t c0 = static_cast<uint32_t>(block), c1 = static_cast<uint32_t>(block >> 32);
  uint32_t c2 = static_cast<uint32_t>(offset), c3 = static_cast<uint32_t>(offset >> 32);
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = uint64_t{0xD2511F53u} * c0, p1 = uint64_t{0xCD9E8D57u} * c2;
    uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0, c1 = n1, c2 = n2, c3 = n3;
    k0 += 0x9E3779B9u, k1 += 0xBB67AE85u;
  }
  uint32_t lanes[4] = {c0, c1, c2, c3};
  return static_cast<float>(lanes[index % 4] >> 8) * (1.0f / 16777216.0f);
}

// Larger float, larger key (for radix select over the logits).
__device__ __forceinline__ uint32_t order_key(float x) {
  uint32_t u = __float_as_uint(x);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__device__ double block_sum(double v, double* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < static_cast<int>(blockDim.x >> 5) ? scratch[lane] : 0.0;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Exclusive prefix count of `flag` over the block (thread order) and the block's total.
__device__ int block_prefix(bool flag, int* scratch, int& total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  unsigned ballot = __ballot_sync(0xffffffffu, flag);
  int before = __popc(ballot & ((1u << lane) - 1));
  __syncthreads();
  if (lane == 0) scratch[warp] = __popc(ballot);
  __syncthreads();
  int offset = 0;
  total = 0;
  for (int w = 0; w < warps; ++w) {
    if (w < warp) offset += scratch[w];
    total += scratch[w];
  }
  return offset + before;
}

template <typename T>
__global__ void __launch_bounds__(kThreads) sample_rows(SampleArgs a) {
  __shared__ double dscratch[32];
  __shared__ int iscratch[32];
  __shared__ uint32_t shared_key;
  __shared__ double shared_p;
  __shared__ int64_t shared_count;
  __shared__ float cand_v[kMaxTopK], sort_v[kMaxTopK];
  __shared__ int cand_i[kMaxTopK], sort_i[kMaxTopK];
  __shared__ double cand_p[kMaxTopK], sort_p[kMaxTopK];
  const T* row = static_cast<const T*>(a.logits) + blockIdx.x * a.n;
  const int tid = threadIdx.x;
  const double temp = a.temperature;

  float xmax = -INFINITY;
  for (int64_t j = tid; j < a.n; j += blockDim.x) xmax = fmaxf(xmax, to_f(row[j]));
  xmax = block_reduce<true>(xmax, reinterpret_cast<float*>(dscratch));
  const double m = static_cast<double>(xmax) / temp;
  double total = 0;
  for (int64_t j = tid; j < a.n; j += blockDim.x)
    total += exp(static_cast<double>(to_f(row[j])) / temp - m);
  total = block_sum(total, dscratch);
  const float u = uniform_at(a.seed, a.offset, blockIdx.x);

  if (a.top_k > 0 && a.top_k < a.n) {
    // The k-th largest key, bit by bit from the top: the largest K with count(key >= K) >= k.
    const int64_t k = a.top_k;
    uint32_t prefix = 0;
    for (int bit = 31; bit >= 0; --bit) {
      uint32_t candidate = prefix | (1u << bit);
      int count = 0;
      for (int64_t j = tid; j < a.n; j += blockDim.x) count += order_key(to_f(row[j])) >= candidate;
      count = static_cast<int>(block_sum(count, dscratch));
      if (count >= k) prefix = candidate;
    }
    int greater = 0;
    for (int64_t j = tid; j < a.n; j += blockDim.x) greater += order_key(to_f(row[j])) > prefix;
    greater = static_cast<int>(block_sum(greater, dscratch));
    // Gather in index order: every key above the threshold and the first ties up to k.
    int taken = 0, ties = 0;
    for (int64_t base = 0; base < a.n; base += blockDim.x) {
      int64_t j = base + tid;
      float x = j < a.n ? to_f(row[j]) : 0.0f;
      uint32_t key = j < a.n ? order_key(x) : 0;
      int tie_total = 0;
      int tie_rank = block_prefix(j < a.n && key == prefix, iscratch, tie_total);
      bool take = j < a.n && (key > prefix || (key == prefix && ties + tie_rank < k - greater));
      int take_total = 0;
      int at = block_prefix(take, iscratch, take_total);
      if (take) {
        cand_v[taken + at] = x;
        cand_i[taken + at] = static_cast<int>(j);
      }
      taken += take_total;
      ties += tie_total;
      if (taken >= k) break;
    }
    __syncthreads();
    // Probabilities, then a bitonic sort of copies: value descending, index ascending.
    for (int r = tid; r < kMaxTopK; r += blockDim.x) {
      bool real = r < k;
      cand_p[r] = real ? exp(static_cast<double>(cand_v[r]) / temp - m) / total : 0.0;
      sort_v[r] = real ? cand_v[r] : -INFINITY;
      sort_i[r] = real ? cand_i[r] : 0x7fffffff;
      sort_p[r] = cand_p[r];
    }
    __syncthreads();
    for (int size = 2; size <= kMaxTopK; size <<= 1)
      for (int stride = size >> 1; stride > 0; stride >>= 1) {
        for (int r = tid; r < kMaxTopK; r += blockDim.x) {
          int partner = r ^ stride;
          if (partner > r) {
            bool first_before = sort_v[r] > sort_v[partner] ||
                                (sort_v[r] == sort_v[partner] && sort_i[r] < sort_i[partner]);
            bool want_first = (r & size) == 0;
            if (first_before != want_first) {
              float tv = sort_v[r];
              sort_v[r] = sort_v[partner], sort_v[partner] = tv;
              int ti = sort_i[r];
              sort_i[r] = sort_i[partner], sort_i[partner] = ti;
              double tp = sort_p[r];
              sort_p[r] = sort_p[partner], sort_p[partner] = tp;
            }
          }
        }
        __syncthreads();
      }
    if (tid == 0) {
      // The reference's filters, in its order of summation.
      int64_t keep = k;
      if (a.top_p < 1.0) {
        double mass = 0, cum = 0;
        for (int64_t r = 0; r < k; ++r) mass += cand_p[r];  // index order
        for (keep = 0; keep < k; ++keep) {
          if (cum >= a.top_p * mass) break;
          cum += sort_p[keep];
        }
      }
      double threshold = a.min_p > 0 ? a.min_p * sort_p[0] : 0.0;
      float edge_v = sort_v[keep > 0 ? keep - 1 : 0];
      int edge_i = keep > 0 ? sort_i[keep - 1] : -1;
      auto kept = [&](int r) {
        bool in_prefix = cand_v[r] > edge_v || (cand_v[r] == edge_v && cand_i[r] <= edge_i);
        return keep > 0 && in_prefix && !(cand_p[r] < threshold);
      };
      double mass = 0;
      for (int r = 0; r < k; ++r) mass += kept(r) ? cand_p[r] : 0.0;
      double cum = 0;
      int64_t last = -1, pick = -1;
      for (int r = 0; r < k && pick < 0; ++r) {
        double q = kept(r) ? cand_p[r] / mass : 0.0;
        if (q <= 0) continue;
        cum += q;
        last = cand_i[r];
        if (u < cum) pick = cand_i[r];
      }
      a.out[blockIdx.x] = pick >= 0 ? pick : last;
    }
    return;
  }

  // No top-k: top-p keeps every key above an edge key plus the first ties at it (index order),
  // min-p keeps p >= min_p * max p; then the row is walked in index order.
  auto prob = [&](float x) { return exp(static_cast<double>(x) / temp - m) / total; };
  uint32_t edge = 0;        // keys above are kept by top-p
  int64_t edge_last = a.n;  // ties at `edge` with index <= edge_last are kept too
  if (a.top_p < 1.0) {
    double all = 0;
    for (int64_t j = tid; j < a.n; j += blockDim.x) all += prob(to_f(row[j]));
    const double limit = a.top_p * block_sum(all, dscratch);
    // The edge is the smallest key v with mass(key > v) < limit <= mass(key >= v). A search on
    // float masses (the largest K with mass(key > K) >= limit) finds it or a neighbour; the
    // check below settles it in double, as the reference decides.
    const float mf = static_cast<float>(m), tf = static_cast<float>(temp);
    const float inv_total = static_cast<float>(1.0 / total);
    uint32_t prefix = 0;
    for (int bit = 31; bit >= 0; --bit) {
      uint32_t candidate = prefix | (1u << bit);
      float above = 0;
      for (int64_t j = tid; j < a.n; j += blockDim.x) {
        float x = to_f(row[j]);
        if (order_key(x) > candidate) above += expf(x / tf - mf) * inv_total;
      }
      if (block_sum(above, dscratch) >= limit) prefix = candidate;
    }
    // The nearest key present above (up) or below k; 0xffffffff / 0 when there is none.
    auto next_key = [&](uint32_t k, bool up) {
      uint32_t found = up ? 0xffffffffu : 0u;
      for (int64_t j = tid; j < a.n; j += blockDim.x) {
        uint32_t key = order_key(to_f(row[j]));
        if (up ? (key > k && key < found) : (key < k && key > found)) found = key;
      }
      if (tid == 0) shared_key = found;
      __syncthreads();
      if (up)
        atomicMin(&shared_key, found);
      else
        atomicMax(&shared_key, found);
      __syncthreads();
      uint32_t r = shared_key;
      __syncthreads();
      return r;
    };
    edge = next_key(prefix, true);
    double gt = 0;
    for (int step = 0; step < 64; ++step) {
      double g = 0, e = 0;
      for (int64_t j = tid; j < a.n; j += blockDim.x) {
        float x = to_f(row[j]);
        uint32_t key = order_key(x);
        if (key >= edge) {
          double p = prob(x);
          e += p;
          if (key > edge) g += p;
        }
      }
      gt = block_sum(g, dscratch);
      double ge = block_sum(e, dscratch);
      if (gt >= limit) {
        edge = next_key(edge, true);
      } else if (ge < limit) {
        uint32_t lower = next_key(edge, false);
        if (lower == 0u) break;
        edge = lower;
      } else {
        break;
      }
    }
    // Ties at the edge, in index order, while the running mass stays below the limit.
    int64_t ties = 0;
    for (int64_t j = tid; j < a.n; j += blockDim.x) ties += order_key(to_f(row[j])) == edge;
    ties = static_cast<int64_t>(block_sum(static_cast<double>(ties), dscratch));
    if (tid == 0) shared_p = 0;
    __syncthreads();
    for (int64_t j = tid; j < a.n; j += blockDim.x) {
      float x = to_f(row[j]);
      if (order_key(x) == edge) {
        shared_p = prob(x);  // every tie has the same probability: any writer will do
        break;
      }
    }
    __syncthreads();
    if (tid == 0) {
      int64_t keep = 0;
      double cum = gt;
      while (keep < ties && cum < limit) cum += shared_p, ++keep;
      shared_count = keep;
    }
    __syncthreads();
    const int64_t keep_ties = shared_count;
    // The index of the last kept tie.
    edge_last = -1;
    int64_t seen = 0;
    for (int64_t base = 0; base < a.n && seen < keep_ties; base += blockDim.x) {
      int64_t j = base + tid;
      bool tie = j < a.n && order_key(to_f(row[j])) == edge;
      int tie_total = 0;
      int rank = block_prefix(tie, iscratch, tie_total);
      if (tie && seen + rank == keep_ties - 1) shared_count = j;
      __syncthreads();
      if (seen + tie_total >= keep_ties) edge_last = shared_count;
      seen += tie_total;
      __syncthreads();
    }
  }
  const double threshold = a.min_p > 0 ? a.min_p * (exp(0.0) / total) : 0.0;
  const bool top_p_on = a.top_p < 1.0;
  auto kept_p = [&](int64_t j, float x) {
    uint32_t key = order_key(x);
    if (top_p_on && (key < edge || (key == edge && j > edge_last))) return 0.0;
    double p = prob(x);
    return p < threshold ? 0.0 : p;
  };
  double mass = 0;
  for (int64_t j = tid; j < a.n; j += blockDim.x) mass += kept_p(j, to_f(row[j]));
  mass = block_sum(mass, dscratch);
  double carry = 0;
  int64_t last = -1;
  for (int64_t base = 0; base < a.n; base += blockDim.x) {
    int64_t j = base + tid;
    double q = j < a.n ? kept_p(j, to_f(row[j])) / mass : 0.0;
    // Inclusive scan of q over the chunk: warps, then warp totals.
    double incl = q;
    const int lane = tid & 31, warp = tid >> 5;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      double up = __shfl_up_sync(0xffffffffu, incl, o);
      if (lane >= o) incl += up;
    }
    __syncthreads();
    if (lane == 31) dscratch[warp] = incl;
    __syncthreads();
    double before = 0, chunk = 0;
    for (int w = 0; w < static_cast<int>(blockDim.x >> 5); ++w) {
      if (w < warp) before += dscratch[w];
      chunk += dscratch[w];
    }
    double cum = carry + before + incl;
    bool hit = q > 0 && u < cum;
    // The first hit in index order wins; every thread learns whether there was one.
    int first = hit ? static_cast<int>(tid) : kThreads;
    first = -static_cast<int>(
        block_reduce<true>(-static_cast<float>(first), reinterpret_cast<float*>(iscratch)));
    if (first < kThreads) {
      if (tid == first) a.out[blockIdx.x] = j;
      return;
    }
    int has = q > 0 ? static_cast<int>(tid) : -1;
    int top = static_cast<int>(
        block_reduce<true>(static_cast<float>(has), reinterpret_cast<float*>(iscratch)));
    if (top >= 0) last = base + top;
    carry += chunk;
  }
  if (tid == 0) a.out[blockIdx.x] = last;
}

// Index of the first kept category whose running probability exceeds u (the reference's
// inverse CDF, q in double, scanned a block-width chunk at a time), or the last kept one.
template <typename Q>
__device__ int64_t walk_cdf(int64_t n, float u, Q q_of, double* dscratch, int* iscratch) {
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  double carry = 0;
  int64_t last = -1;
  for (int64_t base = 0; base < n; base += blockDim.x) {
    int64_t j = base + tid;
    double q = j < n ? q_of(j) : 0.0;
    double incl = q;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      double up = __shfl_up_sync(0xffffffffu, incl, o);
      if (lane >= o) incl += up;
    }
    __syncthreads();
    if (lane == 31) dscratch[warp] = incl;
    __syncthreads();
    double before = 0, chunk = 0;
    for (int w = 0; w < static_cast<int>(blockDim.x >> 5); ++w) {
      if (w < warp) before += dscratch[w];
      chunk += dscratch[w];
    }
    bool hit = q > 0 && u < carry + before + incl;
    int first = hit ? tid : kThreads;
    first = -static_cast<int>(
        block_reduce<true>(-static_cast<float>(first), reinterpret_cast<float*>(iscratch)));
    if (first < kThreads) return base + first;
    int has = q > 0 ? tid : -1;
    int top = static_cast<int>(
        block_reduce<true>(static_cast<float>(has), reinterpret_cast<float*>(iscratch)));
    if (top >= 0) last = base + top;
    carry += chunk;
  }
  return last;
}

template <typename T>
__global__ void __launch_bounds__(kThreads) multinomial_rows(MultinomialArgs a) {
  extern __shared__ uint32_t taken[];  // without replacement: drawn categories, one bit each
  __shared__ double dscratch[32];
  __shared__ int iscratch[32];
  const T* row = static_cast<const T*>(a.probs) + blockIdx.x * a.n;
  const int tid = threadIdx.x;
  auto fail = [&](unsigned long long kind) {
    if (tid == 0) atomicMin(a.status, blockIdx.x * 4ull + kind);
  };
  double total = 0, bad = 0;
  for (int64_t j = tid; j < a.n; j += blockDim.x) {
    double w = to_f(row[j]);
    if (!(w >= 0) || isinf(w)) bad = 1;
    total += w;
  }
  bad = block_sum(bad, dscratch);
  total = block_sum(total, dscratch);
  if (bad > 0) return fail(0);
  if (!(total > 0)) return fail(1);
  const int64_t words = (a.n + 31) / 32;
  if (!a.replacement)
    for (int64_t w = tid; w < words; w += blockDim.x) taken[w] = 0;
  __syncthreads();
  auto weight = [&](int64_t j) -> double {
    if (!a.replacement && ((taken[j >> 5] >> (j & 31)) & 1u)) return 0.0;
    return to_f(row[j]);
  };
  for (int64_t s = 0; s < a.samples; ++s) {
    double sum = total;
    if (!a.replacement) {
      sum = 0;
      for (int64_t j = tid; j < a.n; j += blockDim.x) sum += weight(j);
      sum = block_sum(sum, dscratch);
      if (!(sum > 0)) return fail(2);
    }
    const int64_t at = static_cast<int64_t>(blockIdx.x) * a.samples + s;
    const float u = uniform_at(a.seed, a.offset, static_cast<uint64_t>(at));
    int64_t j = walk_cdf(
        a.n, u, [&](int64_t i) { return weight(i) / sum; }, dscratch, iscratch);
    if (tid == 0) {
      a.out[at] = j;
      if (!a.replacement && j >= 0) taken[j >> 5] |= 1u << (j & 31);
    }
    __syncthreads();
  }
}

}  // namespace

cudaError_t launch_multinomial(DType dtype, const MultinomialArgs& args, cudaStream_t stream) {
  cudaError_t st = cudaMemsetAsync(args.status, 0xff, sizeof(unsigned long long), stream);
  if (st != cudaSuccess || args.rows == 0) return st;
  if (!args.replacement && args.n > kMaxMultinomialN) return cudaErrorInvalidValue;
  auto grid = static_cast<unsigned>(args.rows);
  size_t smem = args.replacement ? 0 : static_cast<size_t>((args.n + 31) / 32) * 4;
  switch (dtype) {
    case DType::kF32:
      multinomial_rows<float><<<grid, kThreads, smem, stream>>>(args);
      break;
    case DType::kF16:
      multinomial_rows<__half><<<grid, kThreads, smem, stream>>>(args);
      break;
    case DType::kBF16:
      multinomial_rows<__nv_bfloat16><<<grid, kThreads, smem, stream>>>(args);
      break;
    default:
      return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

cudaError_t launch_sample(DType dtype, const SampleArgs& args, cudaStream_t stream) {
  if (args.rows == 0) return cudaSuccess;
  if (args.top_k > kMaxTopK && args.top_k < args.n) return cudaErrorInvalidValue;
  auto grid = static_cast<unsigned>(args.rows);
  switch (dtype) {
    case DType::kF32:
      sample_rows<float><<<grid, kThreads, 0, stream>>>(args);
      break;
    case DType::kF16:
      sample_rows<__half><<<grid, kThreads, 0, stream>>>(args);
      break;
    case DType::kBF16:
      sample_rows<__nv_bfloat16><<<grid, kThreads, 0, stream>>>(args);
      break;
    default:
      return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

}  // namespace flagstone::ops::cuda
