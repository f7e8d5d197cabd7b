// cuda native decode attention (one query per head over a KV cache or a paged cache, f16/bf16,
// head dims 64 or 128): one block per (key split, kv head, sequence) serves every query head of
// its GQA group (attention_decode.cuh, shared with the engine's fused kernel). The split count is
// fixed at launch (graph-safe); each block sizes its share from the live length it reads on the
// device, so short contexts use few blocks and idle splits exit before waiting on the previous
// kernel; the last block of a group to finish merges the splits (no second kernel).
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "cuda/attention_decode.cuh"
#include "cuda/device_utils.cuh"
#include "cuda/kernels.h"

namespace flagstone::ops::cuda {
namespace {

using decode_core::kThreads;

// The group's attention with this launch's rows: `row_at(j)` gives row j's K and V offsets.
template <typename T, int D, int G, typename RowFn>
__device__ __forceinline__ void decode_group(const AttentionArgs& a, decode_core::GroupTask<T>& t,
                                             RowFn row_at) {
  const int part = (threadIdx.x & 31) % decode_core::Tile<D, G>::kLanes;
  const int64_t kh = blockIdx.y, b = blockIdx.z;
  // The first pass's rows head for L2 while the previous kernel finishes (it may be writing the
  // newest of them, so they are only prefetched, not read).
  decode_core::prefetch_pass<T, D, G>(t, row_at);
  decode_core::wait_for_previous_kernel();
  decode_core::allow_next_kernel();

  uint4 qraw[G];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    const T* qr = static_cast<const T*>(a.q) + b * a.q_stride[0] + (kh * G + g) * a.q_stride[1];
    qraw[g] = *reinterpret_cast<const uint4*>(qr + part * 8);
  }
  float q[G][8];
  const float scale = a.scale * decode_core::kLog2e;
#pragma unroll
  for (int g = 0; g < G; ++g) {
    decode_core::unpack8<T>(qraw[g], q[g]);
#pragma unroll
    for (int e = 0; e < 8; ++e) q[g][e] *= scale;
  }
  decode_core::attend<T, D, G>(q, t, row_at);
}

template <typename T, int D, int G, bool kPaged>
__global__ void __launch_bounds__(kThreads) decode_attention(AttentionArgs a) {
  using S = decode_core::Tile<D, G>;
  const int part = (threadIdx.x & 31) % S::kLanes;
  const int64_t kh = blockIdx.y, b = blockIdx.z;
  // Before the wait: only the length and the block table, which no kernel that lets this one
  // start early (the engine's and this file's, each after its own wait) writes.
  int64_t n = a.kv_len, first_block = -1;
  bool bad = false;
  if constexpr (kPaged) {
    n = load_index(a.seq_lens, a.lens_i64, b);
    if (a.max_blocks == 1) first_block = load_index(a.block_table, a.table_i64, b);
    if (n < 0 || n > a.max_blocks * a.block_size) bad = true, n = 0;
  }
  const int64_t end = a.causal ? min(n, max(int64_t{0}, a.causal_shift + 1)) : n;
  decode_core::GroupTask<T> t;
  t.split = decode_core::split_of(end, gridDim.x, blockIdx.x, S::kPass, S::kStep);
  if (blockIdx.x >= t.split.active) return;
  t.k = static_cast<const T*>(a.k) + part * 8;
  t.v = static_cast<const T*>(a.v) + part * 8;
  if constexpr (kPaged) {
    t.k += kh * a.k_stride[2], t.v += kh * a.k_stride[2];
  } else {
    t.k += b * a.k_stride[0] + kh * a.k_stride[1];
    t.v += b * a.v_stride[0] + kh * a.v_stride[1];
  }
  t.index = blockIdx.x, t.splits = gridDim.x;
  t.bad = bad, t.empty = n == 0;
  t.out = static_cast<T*>(a.out) + b * a.o_stride[0] + kh * G * a.o_stride[1];
  t.out_head = a.o_stride[1], t.out_elem = a.o_stride[3];
  if (a.partials) {
    t.partials = a.partials + (b * a.q_heads + kh * G) * decode_core::partial_floats(gridDim.x, D);
    t.counter = a.counters + b * a.kv_heads + kh;
  }
  if constexpr (kPaged) {
    if (a.max_blocks == 1) {
      // One block per sequence (the engine's cache): rows are that block's rows.
      t.bad |= end > 0 && (first_block < 0 || first_block >= a.num_blocks);
      const int64_t base = first_block * a.k_stride[0], row = a.k_stride[1];
      const bool none = t.bad;
      decode_group<T, D, G>(a, t, [&](int64_t j) {
        const int64_t off = none ? -1 : base + j * row;
        return decode_core::RowAt{off, off};
      });
    } else {
      decode_group<T, D, G>(a, t, [&](int64_t j) {
        const int64_t blk =
            load_index(a.block_table, a.table_i64, b * a.max_blocks + j / a.block_size);
        const int64_t off = blk < 0 || blk >= a.num_blocks
                                ? -1
                                : blk * a.k_stride[0] + (j % a.block_size) * a.k_stride[1];
        return decode_core::RowAt{off, off};
      });
    }
  } else {
    decode_group<T, D, G>(a, t, [&](int64_t j) {
      return decode_core::RowAt{j * a.k_stride[2], j * a.v_stride[2]};
    });
  }
}

// ---- The previous kernel (session 11), selectable with FLAGSTONE_DECODE_ATTENTION=split for a
// same-run comparison: the wait before any load, and a three-pass merge by the last split.
namespace previous {

using decode_core::unpack8;
constexpr int kWarps = decode_core::kWarps;
constexpr int kMaxSplits = decode_core::kMaxSplits;
constexpr float kLog2e = decode_core::kLog2e;

template <int D>
struct RowSplit {
  static constexpr int kLanes = D / 8;
  static constexpr int kRows = 32 / kLanes;
  static constexpr int kStep = kWarps * kRows;
};

// Offset of key row j's pack for this lane (K and V share it when paged), or -1 when a paged
// block index is out of range (then `bad` is set). `first_block` is the sequence's only block
// when its table has one entry (loaded once, up front), else -1.
template <bool kPaged>
__device__ __forceinline__ int64_t row_offset(const AttentionArgs& a, int64_t b, int64_t kh,
                                              int64_t j, int64_t first_block, bool& bad) {
  if constexpr (kPaged) {
    int64_t blk = a.max_blocks == 1
                      ? first_block
                      : load_index(a.block_table, a.table_i64, b * a.max_blocks + j / a.block_size);
    if (blk < 0 || blk >= a.num_blocks) {
      bad = true;
      return -1;
    }
    return blk * a.k_stride[0] + (j % a.block_size) * a.k_stride[1] + kh * a.k_stride[2];
  } else {
    return j * a.k_stride[2];
  }
}

// Programmatic dependent launch (sm_90): launched with the attribute, this kernel may start while
// the previous kernel of the stream finishes, and waits here before reading anything (the query
// and the cache it wrote). Without the attribute both instructions are no-ops.
__device__ __forceinline__ void wait_for_previous_kernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void allow_next_kernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// exp2(x - m) for an online softmax whose running max may still be -inf (then 0, not NaN).
__device__ __forceinline__ float rescale(float x, float m) {
  return m == -INFINITY ? 0.0f : exp2f(x - m);
}

// The finished value of one output element, with the row kernel's conventions: NaN for a bad
// length or block index, zeros for a sequence with no keys.
__device__ __forceinline__ float finish(float value, float total, bool bad, bool empty) {
  if (bad) return NAN;
  if (total > 0) return value / total;
  return empty ? 0.0f : NAN;
}

// Attention of up to kMaxGroup query heads over one split of one kv head's live keys. Scores are
// kept in the log2 domain (q is scaled by log2 e). A block with the whole sequence writes the
// output; otherwise it writes (max, sum, flags, unnormalized V) to `partials` and the last block
// of the head to arrive (a ticket on `counters`, reset by that block for the next launch) merges.
template <typename T, int D, int G, bool kPaged>
__global__ void __launch_bounds__(kThreads) decode_attention(AttentionArgs a) {
  using R = RowSplit<D>;
  constexpr int U = G >= 8 ? 2 : 4;  // rows per thread whose loads are issued together
  constexpr int kWidth = 2 + D;      // per warp and head in `merge`: m, l, accumulators
  __shared__ float merge[kWarps * G * kWidth];
  __shared__ float weight[G][kMaxSplits];
  __shared__ float total[G];
  __shared__ int any_bad;
  __shared__ bool last;

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int sub = lane / R::kLanes, part = lane % R::kLanes;  // row within warp, pack in row
  const int slot = warp * R::kRows + sub;
  const int64_t split = blockIdx.x, kh = blockIdx.y, b = blockIdx.z;
  const int64_t splits = gridDim.x;
  wait_for_previous_kernel();
  allow_next_kernel();

  // The query rows, the sequence's length and (one-block tables) its block are independent
  // loads: all issued before the first is used.
  uint4 qraw[G];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    const T* qr = static_cast<const T*>(a.q) + b * a.q_stride[0] + (kh * G + g) * a.q_stride[1];
    qraw[g] = *reinterpret_cast<const uint4*>(qr + part * 8);
  }
  int64_t n = a.kv_len, first_block = -1;
  bool bad = false;
  if constexpr (kPaged) {
    n = load_index(a.seq_lens, a.lens_i64, b);
    if (a.max_blocks == 1) first_block = load_index(a.block_table, a.table_i64, b);
    if (n < 0 || n > a.max_blocks * a.block_size) bad = true, n = 0;
  }
  // Each split's share: one full pass of loads per thread at least (kRowsPerPass keys), the same
  // arithmetic in every block; splits past the live keys exit here.
  constexpr int64_t kRowsPerPass = U * R::kStep;
  const int64_t end = a.causal ? min(n, max(int64_t{0}, a.causal_shift + 1)) : n;
  int64_t chunk = max(kRowsPerPass, (end + splits - 1) / splits);
  chunk = (chunk + R::kStep - 1) / R::kStep * R::kStep;
  const int64_t active = max(int64_t{1}, (end + chunk - 1) / chunk);
  if (split >= active) return;
  const int64_t j_begin = split * chunk, j_end = min(end, j_begin + chunk);

  float q[G][8];
  const float scale = a.scale * kLog2e;
#pragma unroll
  for (int g = 0; g < G; ++g) {
    unpack8<T>(qraw[g], q[g]);
#pragma unroll
    for (int e = 0; e < 8; ++e) q[g][e] *= scale;
  }
  const T* kbase = static_cast<const T*>(a.k) + part * 8;
  const T* vbase = static_cast<const T*>(a.v) + part * 8;
  if constexpr (!kPaged) {
    kbase += b * a.k_stride[0] + kh * a.k_stride[1];
    vbase += b * a.v_stride[0] + kh * a.v_stride[1];
  }
  float m[G], l[G], acc[G][8];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    m[g] = -INFINITY, l[g] = 0;
#pragma unroll
    for (int e = 0; e < 8; ++e) acc[g][e] = 0;
  }

  // U rows per thread per pass, all loads issued before any is used. The pass count is the same
  // for every thread (rows past the end are masked), so the row-group shuffles see every lane.
  for (int64_t base = j_begin; base < j_end; base += U * R::kStep) {
    uint4 kraw[U], vraw[U];
    bool has[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t j = base + u * R::kStep + slot;
      has[u] = j < j_end;
      kraw[u] = make_uint4(0, 0, 0, 0), vraw[u] = make_uint4(0, 0, 0, 0);
      if (has[u]) {
        const int64_t off = row_offset<kPaged>(a, b, kh, j, first_block, bad);
        has[u] = off >= 0;
        if (has[u]) {
          kraw[u] = *reinterpret_cast<const uint4*>(kbase + off);
          vraw[u] = *reinterpret_cast<const uint4*>(vbase + (kPaged ? off : j * a.v_stride[2]));
        }
      }
    }
    float s[U][G];
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
        for (int o = R::kLanes / 2; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
        s[u][g] = has[u] ? dot : -INFINITY;
      }
    }
    // One rescale per pass: the new max over the pass's rows, then their weights.
#pragma unroll
    for (int g = 0; g < G; ++g) {
      float mx = m[g];
#pragma unroll
      for (int u = 0; u < U; ++u) mx = fmaxf(mx, s[u][g]);
      const float correction = rescale(m[g], mx);
      l[g] *= correction;
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[g][e] *= correction;
#pragma unroll
      for (int u = 0; u < U; ++u) {
        s[u][g] = rescale(s[u][g], mx);
        l[g] += s[u][g];
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
        for (int e = 0; e < 8; ++e) acc[g][e] += s[u][g] * vf[e];
    }
  }

  // The rows of a warp merge by shuffles (lanes kLanes apart hold the same elements), then the
  // warps through shared memory.
#pragma unroll
  for (int o = R::kLanes; o < 32; o <<= 1) {
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
  bad = __syncthreads_or(bad);

  const int64_t width = 3 + D;
  for (int idx = threadIdx.x; idx < G * D; idx += kThreads) {
    const int g = idx / D, c = idx % D;
    float big = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) big = fmaxf(big, merge[(w * G + g) * kWidth]);
    float value = 0, sum = 0;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      const float* theirs = merge + (w * G + g) * kWidth;
      const float f = rescale(theirs[0], big);
      sum += theirs[1] * f;
      value += theirs[2 + c] * f;
    }
    const int64_t h = kh * G + g;
    if (active == 1) {
      T* out = static_cast<T*>(a.out) + b * a.o_stride[0] + h * a.o_stride[1];
      out[c * a.o_stride[3]] = from_f<T>(finish(value, sum, bad, n == 0));
    } else {
      float* p = a.partials + ((b * a.q_heads + h) * splits + split) * width;
      if (c == 0) p[0] = big, p[1] = sum, p[2] = bad ? 1.0f : 0.0f;
      p[3 + c] = value;
    }
  }
  if (active == 1) return;

  // Publish this split, then take a ticket; the last of the head's `active` splits merges.
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    unsigned* counter = a.counters + b * a.kv_heads + kh;
    const unsigned ticket = atomicAdd(counter, 1u);
    last = ticket == static_cast<unsigned>(active - 1);
    if (last) atomicExch(counter, 0u);
    any_bad = 0;
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  const float* head0 = a.partials + (b * a.q_heads + kh * G) * splits * width;
  for (int g = warp; g < G; g += kWarps) {
    const float* rows = head0 + g * splits * width;
    float big = -INFINITY;
    for (int64_t s = lane; s < active; s += 32) big = fmaxf(big, __ldcg(rows + s * width));
    big = warp_max(big);
    float sum = 0;
    bool flagged = false;
    for (int64_t s = lane; s < active; s += 32) {
      const float w = rescale(__ldcg(rows + s * width), big);
      weight[g][s] = w;
      sum += __ldcg(rows + s * width + 1) * w;
      flagged |= __ldcg(rows + s * width + 2) != 0.0f;
    }
    sum = warp_sum(sum);
    if (lane == 0) total[g] = sum;
    if (__any_sync(0xffffffffu, flagged) && lane == 0) atomicOr(&any_bad, 1);
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < G * D; idx += kThreads) {
    const int g = idx / D, c = idx % D;
    const float* col = head0 + g * splits * width + 3 + c;
    float value = 0;
    int64_t s = 0;
    // Four independent loads in flight per step.
    for (; s + 4 <= active; s += 4) {
      const float v0 = __ldcg(col + s * width), v1 = __ldcg(col + (s + 1) * width);
      const float v2 = __ldcg(col + (s + 2) * width), v3 = __ldcg(col + (s + 3) * width);
      value +=
          v0 * weight[g][s] + v1 * weight[g][s + 1] + v2 * weight[g][s + 2] + v3 * weight[g][s + 3];
    }
    for (; s < active; ++s) value += __ldcg(col + s * width) * weight[g][s];
    T* out = static_cast<T*>(a.out) + b * a.o_stride[0] + (kh * G + g) * a.o_stride[1];
    out[c * a.o_stride[3]] = from_f<T>(finish(value, total[g], any_bad != 0, n == 0));
  }
}

}  // namespace previous

// Programmatic dependent launch on devices of compute capability 9.0 and up, unless
// FLAGSTONE_CUDA_PDL=0 (to measure what it saves).
bool use_pdl() {
  static const bool allowed = [] {
    const char* env = std::getenv("FLAGSTONE_CUDA_PDL");
    return !(env && std::strcmp(env, "0") == 0);
  }();
  if (!allowed) return false;
  int device = 0, major = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess)
    return false;
  return major >= 9;
}

bool previous_kernel() {
  static const bool previous = [] {
    const char* env = std::getenv("FLAGSTONE_DECODE_ATTENTION");
    return env && std::string_view(env) == "split";
  }();
  return previous;
}

template <typename T, int D, int G, bool kPaged>
cudaError_t launch_kernel(const AttentionArgs& a, cudaStream_t stream) {
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(static_cast<unsigned>(a.splits), static_cast<unsigned>(a.kv_heads),
                        static_cast<unsigned>(a.batch));
  config.blockDim = dim3(kThreads);
  config.stream = stream;
  cudaLaunchAttribute attribute[1];
  attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute[0].val.programmaticStreamSerializationAllowed = 1;
  if (use_pdl()) config.attrs = attribute, config.numAttrs = 1;
  if (previous_kernel())
    return cudaLaunchKernelEx(&config, previous::decode_attention<T, D, G, kPaged>, a);
  return cudaLaunchKernelEx(&config, decode_attention<T, D, G, kPaged>, a);
}

template <typename T, int D, int G>
cudaError_t launch_typed(const AttentionArgs& a, cudaStream_t stream) {
  return a.block_table ? launch_kernel<T, D, G, true>(a, stream)
                       : launch_kernel<T, D, G, false>(a, stream);
}

template <typename T, int D>
cudaError_t launch_group(const AttentionArgs& a, cudaStream_t stream) {
  switch (a.q_heads / a.kv_heads) {
    case 1:
      return launch_typed<T, D, 1>(a, stream);
    case 2:
      return launch_typed<T, D, 2>(a, stream);
    case 4:
      return launch_typed<T, D, 4>(a, stream);
    case 8:
      return launch_typed<T, D, 8>(a, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

template <typename T>
cudaError_t launch_dim(const AttentionArgs& a, cudaStream_t stream) {
  if (a.head_dim == 64) return launch_group<T, 64>(a, stream);
  if (a.head_dim == 128) return launch_group<T, 128>(a, stream);
  return cudaErrorInvalidValue;
}

bool rows_aligned(const void* p, const int64_t (&stride)[4]) {
  if ((reinterpret_cast<uintptr_t>(p) & 15u) != 0) return false;
  for (int d = 0; d < 3; ++d)
    if (stride[d] % 8 != 0) return false;
  return stride[3] == 1;
}

}  // namespace

int64_t decode_attention_min_keys(int64_t head_dim, int64_t group) {
  return decode_core::keys_per_pass(head_dim, group);
}
int64_t decode_attention_partial_floats(int64_t splits, int64_t head_dim) {
  return decode_core::partial_floats(splits, head_dim);
}

bool decode_attention_supported(DType dtype, const AttentionArgs& a) {
  if (dtype != DType::kF16 && dtype != DType::kBF16) return false;
  if (a.q_len != 1 || a.mask) return false;
  if (a.block_table ? a.max_blocks * a.block_size < 1 : a.kv_len < 1) return false;
  if (a.head_dim != a.v_dim || (a.head_dim != 64 && a.head_dim != 128)) return false;
  int64_t group = a.kv_heads > 0 ? a.q_heads / a.kv_heads : 0;
  if (group < 1 || group > decode_core::kMaxGroup || (group & (group - 1)) != 0) return false;
  if (a.batch > 65535 || a.kv_heads > 65535) return false;
  // Query heads of a group must be adjacent rows ([b, h, 1, d] with any head stride); a paged
  // cache is [blocks, block_size, kv_heads, d] with K's strides for V as well.
  if (a.block_table)
    return rows_aligned(a.q, a.q_stride) && rows_aligned(a.k, a.k_stride) &&
           (reinterpret_cast<uintptr_t>(a.v) & 15u) == 0;
  return rows_aligned(a.q, a.q_stride) && rows_aligned(a.k, a.k_stride) &&
         rows_aligned(a.v, a.v_stride);
}

cudaError_t launch_decode_attention(DType dtype, const AttentionArgs& args, cudaStream_t stream) {
  if (args.splits < 1 || args.splits > decode_core::kMaxSplits) return cudaErrorInvalidValue;
  if (args.splits > 1 && (!args.partials || !args.counters)) return cudaErrorInvalidValue;
  if (dtype == DType::kBF16) return launch_dim<__nv_bfloat16>(args, stream);
  if (dtype == DType::kF16) return launch_dim<__half>(args, stream);
  return cudaErrorInvalidValue;
}

}  // namespace flagstone::ops::cuda
