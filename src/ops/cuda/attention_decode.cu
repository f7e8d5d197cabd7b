// cuda native decode attention (one query per head over a KV cache or a paged cache, f16/bf16,
// head dims 64 or 128): one block per (key split, kv head, sequence) serves every query head of
// its GQA group (attention_decode.cuh, shared with the engine's fused kernel). The split count is
// fixed at launch (graph-safe); each block sizes its share from the live length it reads on the
// device, so short contexts use few blocks and idle splits exit before waiting on the previous
// kernel; the last block of a group to finish merges the splits (no second kernel).

#include "cuda/attention_decode.cuh"
#include "cuda/device_utils.cuh"
#include "cuda/kernels.h"
#include "cuda/pdl.cuh"

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

template <typename T, int D, int G, bool kPaged>
cudaError_t launch_kernel(const AttentionArgs& a, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(a.splits), static_cast<unsigned>(a.kv_heads),
                  static_cast<unsigned>(a.batch));
  return launch_with_pdl(decode_attention<T, D, G, kPaged>, grid, dim3(kThreads), 0, stream, a);
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
