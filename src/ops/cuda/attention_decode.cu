// cuda native decode attention (one query per head over a KV cache or a paged cache, f16/bf16,
// head dims 64 or 128): one block per (key split, kv head, sequence) serves every query head of its
// GQA group, so each K/V row is read from memory once, with 16-byte loads (a row spread over D/8
// lanes). Enough splits are made to fill every SM; attention_combine (attention.cu) merges them.
#include "cuda/device_utils.cuh"
#include "cuda/kernels.h"

namespace flagstone::ops::cuda {
namespace {

constexpr int kThreads = 128;  // four warps
constexpr int kMaxGroup = 8;   // query heads per kv head served by one block

// Lanes of a warp that share one key row (8 elements of 2 bytes each), and rows per warp step.
template <int D>
struct RowSplit {
  static constexpr int kLanes = D / 8;
  static constexpr int kRows = 32 / kLanes;
};

template <typename T>
__device__ __forceinline__ void unpack8(const uint4& raw, float (&out)[8]) {
  const T* v = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int i = 0; i < 8; ++i) out[i] = to_f(v[i]);
}

// Address of key row j's pack for this lane (K and V share the offset when paged), or null when
// a paged block index is out of range.
template <bool kPaged>
__device__ __forceinline__ int64_t row_offset(const AttentionArgs& a, int64_t b, int64_t kh,
                                              int64_t j, bool& bad) {
  if constexpr (kPaged) {
    int64_t blk = load_index(a.block_table, a.table_i64, b * a.max_blocks + j / a.block_size);
    if (blk < 0 || blk >= a.num_blocks) {
      bad = true;
      return -1;
    }
    return blk * a.k_stride[0] + (j % a.block_size) * a.k_stride[1] + kh * a.k_stride[2];
  } else {
    return j * a.k_stride[2];
  }
}

// Partial attention of up to kMaxGroup query heads over keys [split * chunk, ...) of one kv
// head. Writes, per query head, (max, sum, flags, unnormalized V accumulators) for
// attention_combine in the layout attention_rows uses. The key loop is uniform per warp (rows
// past the end are masked, not skipped) so the row-group shuffles always have every lane.
template <typename T, int D, int G, bool kPaged>
__global__ void __launch_bounds__(kThreads) decode_split(AttentionArgs a, int64_t chunk) {
  using R = RowSplit<D>;
  extern __shared__ float merge[];  // per slot and head: m, l, then D accumulators
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int sub = lane / R::kLanes, part = lane % R::kLanes;  // row within step, pack in row
  const int slot = warp * R::kRows + sub, slots = (kThreads / 32) * R::kRows;
  const int64_t split = blockIdx.x, kh = blockIdx.y, b = blockIdx.z;
  int64_t n = a.kv_len;
  bool bad = false;
  if constexpr (kPaged) {
    n = load_index(a.seq_lens, a.lens_i64, b);
    if (n < 0 || n > a.max_blocks * a.block_size) bad = true, n = 0;
  }
  const int64_t end = a.causal ? min(n, max(int64_t{0}, a.causal_shift + 1)) : n;
  const int64_t j_begin = split * chunk, j_end = min(end, j_begin + chunk);

  float q[G][8];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    const T* qr = static_cast<const T*>(a.q) + b * a.q_stride[0] + (kh * G + g) * a.q_stride[1];
    uint4 raw = *reinterpret_cast<const uint4*>(qr + part * 8);
    unpack8<T>(raw, q[g]);
#pragma unroll
    for (int e = 0; e < 8; ++e) q[g][e] *= a.scale;
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
  // Two rows per slot per iteration, both loads issued before either is used.
  constexpr int64_t kStep = (kThreads / 32) * R::kRows;
  for (int64_t jw = j_begin + warp * R::kRows; jw < j_end; jw += 2 * kStep) {
    const int64_t j0 = jw + sub, j1 = j0 + kStep;
    bool has0 = j0 < j_end, has1 = j1 < j_end;
    uint4 k0{}, v0{}, k1{}, v1{};
    if (has0) {
      int64_t off = row_offset<kPaged>(a, b, kh, j0, bad);
      has0 = off >= 0;
      if (has0) {
        k0 = *reinterpret_cast<const uint4*>(kbase + off);
        v0 = *reinterpret_cast<const uint4*>(vbase + (kPaged ? off : j0 * a.v_stride[2]));
      }
    }
    if (has1) {
      int64_t off = row_offset<kPaged>(a, b, kh, j1, bad);
      has1 = off >= 0;
      if (has1) {
        k1 = *reinterpret_cast<const uint4*>(kbase + off);
        v1 = *reinterpret_cast<const uint4*>(vbase + (kPaged ? off : j1 * a.v_stride[2]));
      }
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const bool has = r == 0 ? has0 : has1;
      float kf[8], vf[8];
      unpack8<T>(r == 0 ? k0 : k1, kf);
      unpack8<T>(r == 0 ? v0 : v1, vf);
#pragma unroll
      for (int g = 0; g < G; ++g) {
        float s = 0;
#pragma unroll
        for (int e = 0; e < 8; ++e) s += q[g][e] * kf[e];
#pragma unroll
        for (int o = R::kLanes / 2; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        if (!has) continue;
        float mn = fmaxf(m[g], s);
        float correction = __expf(m[g] - mn), p = __expf(s - mn);
        l[g] = l[g] * correction + p;
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[g][e] = acc[g][e] * correction + p * vf[e];
        m[g] = mn;
      }
    }
  }
  // Merge the slots: each writes its state, then threads combine per (head, element).
  constexpr int kWidth = 2 + D;
#pragma unroll
  for (int g = 0; g < G; ++g) {
    float* mine = merge + (slot * G + g) * kWidth;
    if (part == 0) mine[0] = m[g], mine[1] = l[g];
#pragma unroll
    for (int e = 0; e < 8; ++e) mine[2 + part * 8 + e] = acc[g][e];
  }
  bad = __syncthreads_or(bad);
  const int64_t width = 3 + a.v_dim;
  for (int idx = threadIdx.x; idx < G * (D + 1); idx += kThreads) {
    const int g = idx / (D + 1), c = idx % (D + 1);  // c == D: the (max, sum, flags) header
    float big = -INFINITY;
    for (int s = 0; s < slots; ++s) big = fmaxf(big, merge[(s * G + g) * kWidth]);
    float value = 0;
    if (big != -INFINITY)
      for (int s = 0; s < slots; ++s) {
        const float* theirs = merge + (s * G + g) * kWidth;
        if (theirs[0] != -INFINITY) value += theirs[c == D ? 1 : 2 + c] * __expf(theirs[0] - big);
      }
    float* out = a.partials + ((b * a.q_heads + kh * G + g) * gridDim.x + split) * width;
    if (c == D) {
      // Flags as attention_rows writes them: 1 a bad length or block index, 2 no keys at all.
      out[0] = big, out[1] = value, out[2] = static_cast<float>((bad ? 1 : 0) + (n == 0 ? 2 : 0));
    } else {
      out[3 + c] = value;
    }
  }
}

template <typename T, int D, int G>
cudaError_t launch_typed(const AttentionArgs& a, cudaStream_t stream) {
  using R = RowSplit<D>;
  const int slots = (kThreads / 32) * R::kRows;
  size_t smem = static_cast<size_t>(slots) * G * (2 + D) * sizeof(float);
  const bool paged = a.block_table != nullptr;
  const int64_t keys = paged ? a.max_blocks * a.block_size : a.kv_len;
  int64_t chunk = (keys + a.splits - 1) / a.splits;
  dim3 grid(static_cast<unsigned>(a.splits), static_cast<unsigned>(a.kv_heads),
            static_cast<unsigned>(a.batch));
  if (paged)
    decode_split<T, D, G, true><<<grid, kThreads, smem, stream>>>(a, chunk);
  else
    decode_split<T, D, G, false><<<grid, kThreads, smem, stream>>>(a, chunk);
  return cudaGetLastError();
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

bool decode_attention_supported(DType dtype, const AttentionArgs& a) {
  if (dtype != DType::kF16 && dtype != DType::kBF16) return false;
  if (a.q_len != 1 || a.mask) return false;
  if (a.block_table ? a.max_blocks * a.block_size < 1 : a.kv_len < 1) return false;
  if (a.head_dim != a.v_dim || (a.head_dim != 64 && a.head_dim != 128)) return false;
  int64_t group = a.kv_heads > 0 ? a.q_heads / a.kv_heads : 0;
  if (group < 1 || group > kMaxGroup || (group & (group - 1)) != 0) return false;
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
  if (!args.partials || args.splits < 1) return cudaErrorInvalidValue;
  if (dtype == DType::kBF16) return launch_dim<__nv_bfloat16>(args, stream);
  if (dtype == DType::kF16) return launch_dim<__half>(args, stream);
  return cudaErrorInvalidValue;
}

}  // namespace flagstone::ops::cuda
