// The decode step's rotary, KV append and attention in one launch (the default for models
// without q/k norms): each block turns its GQA group's query heads with the rotary angles in
// registers, the block holding the newest position also turns that key and appends it and the
// value to the cache, and the attention is the ops library's decode core (attention_decode.cuh:
// splits sized from the live length, the last split merges).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "../../ops/cuda/attention_decode.cuh"
#include "attention_cluster.cuh"
#include "kv_cache_write.h"
#include "rotate_pack.cuh"
#include "shape_dispatch.cuh"

namespace flagstone::engine::detail {
namespace {

using decode_core::kThreads;
// The workspace the step allocates holds 128 * (2 + D) floats per (sequence, query head)
// (kv_cache_write.h); the core's layout needs (4 + D) per split, so at most 120 splits fit.
constexpr int64_t kMaxFusedSplits = 120;

// kCluster: the group's splits are one thread-block cluster and merge through the first split's
// shared memory (attention_cluster.cuh) instead of the workspace.
template <typename T, int D, int G, bool kCluster>
__global__ void __launch_bounds__(kThreads) rope_attention(RopeAttentionArgs a) {
  using S = decode_core::Tile<D, G>;
  if constexpr (kCluster) decode_core::cluster_start();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int sub = lane / S::kLanes, part = lane % S::kLanes;
  const int64_t kh = blockIdx.y, b = blockIdx.z;
  const int64_t hq = a.q_heads, hk = a.kv_heads;
  // Before the wait, nothing the q/k/v projection this kernel follows writes: the position (the
  // previous step's greedy pick wrote it), the rotary angles, and the cached rows before the new
  // one (earlier steps wrote them), so their first pass loads while the projection finishes.
  const int64_t p = a.start[b];
  const bool bad = p < 0 || p >= a.capacity || p >= a.max_positions;
  const int64_t end = bad ? 0 : p + 1;
  decode_core::GroupTask<T> t;
  t.split = decode_core::split_of(end, gridDim.x, blockIdx.x, S::kPass, S::kStep);
  if (blockIdx.x >= t.split.active) return;
  const int64_t row = hk * D;  // elements per cache position
  T* kbase = static_cast<T*>(a.k_cache) + b * a.capacity * row + kh * D + part * 8;
  T* vbase = static_cast<T*>(a.v_cache) + b * a.capacity * row + kh * D + part * 8;
  t.k = kbase, t.v = vbase;
  t.fresh = bad ? -1 : p;
  auto row_at = [&](int64_t j) { return decode_core::RowAt{j * row, j * row}; };
  decode_core::Pass<S::kUnroll> first;
  bool no_bad = false;
  decode_core::load_pass<T, D, G>(t, row_at, t.split.begin, first, no_bad);
  float c[8] = {}, s[8] = {};
  if (!bad) load_angles<T, D>(a.cos, a.sin, p, part, a.neox, c, s);
  decode_core::allow_next_kernel();
  decode_core::wait_for_previous_kernel();

  // The group's query heads and the new key (every block turns it: the block whose split holds
  // position p uses it from registers, and one row group of that block appends it).
  const T* heads = static_cast<const T*>(a.heads) + b * a.heads_batch;
  uint4 qraw[G];
#pragma unroll
  for (int g = 0; g < G; ++g)
    qraw[g] = *reinterpret_cast<const uint4*>(heads + (kh * G + g) * D + part * 8);
  const uint4 kraw = *reinterpret_cast<const uint4*>(heads + (hq + kh) * D + part * 8);
  t.fresh_v = *reinterpret_cast<const uint4*>(heads + (hq + hk + kh) * D + part * 8);
  float q[G][8];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    decode_core::unpack8<T>(qraw[g], q[g]);
    if (!bad) rotate_pack<T, D>(q[g], c, s, part, a.neox);
#pragma unroll
    for (int e = 0; e < 8; ++e) q[g][e] *= a.scale * decode_core::kLog2e;
  }
  float k[8];
  decode_core::unpack8<T>(kraw, k);
  rotate_pack<T, D>(k, c, s, part, a.neox);
  T* packed = reinterpret_cast<T*>(&t.fresh_k);
#pragma unroll
  for (int e = 0; e < 8; ++e) packed[e] = decode_core::round_to<T>(k[e]);
  if (!bad && t.split.end == end && warp == 0 && sub == 0) {
    *reinterpret_cast<uint4*>(kbase + p * row) = t.fresh_k;
    *reinterpret_cast<uint4*>(vbase + p * row) = t.fresh_v;
  }
  t.index = blockIdx.x, t.splits = gridDim.x;
  t.bad = bad;
  t.out = static_cast<T*>(a.out) + (b * hq + kh * G) * D;
  t.out_head = D, t.out_elem = 1;
  if (a.partials) {
    t.partials = a.partials + (b * hq + kh * G) * decode_core::partial_floats(gridDim.x, D);
    t.counter = a.counters + b * hk + kh;
  }
  if constexpr (kCluster)
    decode_core::attend_cluster<T, D, G>(q, t, row_at, &first);
  else
    decode_core::attend<T, D, G>(q, t, row_at, &first);
}

dim3 grid_of(const RopeAttentionArgs& a) {
  return dim3(static_cast<unsigned>(a.splits), static_cast<unsigned>(a.kv_heads),
              static_cast<unsigned>(a.batch));
}

template <typename T>
cudaError_t launch_typed(const RopeAttentionArgs& a, cudaStream_t stream) {
  return with_shape(a, [&](auto d, auto g) {
    constexpr int D = decltype(d)::value, G = decltype(g)::value;
    if (!a.cluster)
      return ops::cuda::launch_with_pdl(rope_attention<T, D, G, false>, grid_of(a), dim3(kThreads),
                                        0, stream, a);
    // The first split's shared memory holds every split's state.
    if (a.splits > decode_core::kMaxClusterSplits<D, G>) return cudaErrorInvalidValue;
    return ops::cuda::launch_clusters_with_pdl(rope_attention<T, D, G, true>, grid_of(a),
                                               dim3(kThreads), 0, stream,
                                               static_cast<unsigned>(a.splits), a);
  });
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
  const int64_t min_keys = decode_core::keys_per_pass(a.head_dim, a.q_heads / a.kv_heads);
  const int64_t blocks = a.kv_heads * a.batch;
  int64_t splits = std::min<int64_t>((2 * int64_t{sms} + blocks - 1) / blocks,
                                     (a.capacity + min_keys - 1) / min_keys);
  return std::max<int64_t>(1, std::min<int64_t>(splits, kMaxFusedSplits));
}

bool rope_attention_clusters(const RopeAttentionArgs& a, int device) {
  // Read at each recording (tests compare both merges in one process).
  const char* env = std::getenv("FLAGSTONE_ENGINE_ATTN_CLUSTER");
  const bool allowed = !(env && std::string(env) == "0");
  int major = 0;
  if (!allowed || a.splits < 2 ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
      major < 9)
    return false;
  // The first split's shared memory must hold every split's state, and the device must place
  // one cluster of that many blocks (a smaller partition of the GPU may not).
  return with_shape(a, [&](auto d, auto g) {
           constexpr int D = decltype(d)::value, G = decltype(g)::value;
           if (a.splits > decode_core::kMaxClusterSplits<D, G>) return cudaErrorInvalidValue;
           const int clusters =
               ops::cuda::max_active_clusters(rope_attention<__nv_bfloat16, D, G, true>, grid_of(a),
                                              dim3(kThreads), 0, static_cast<unsigned>(a.splits));
           return clusters >= 1 ? cudaSuccess : cudaErrorInvalidValue;
         }) == cudaSuccess;
}

const char* launch_rope_attention(const RopeAttentionArgs& a, bool bf16, int device,
                                  void* stream_handle) {
  if (a.batch <= 0) return "";
  if (a.splits < 1 || a.splits > kMaxFusedSplits) return "bad split count for the fused attention";
  if (const char* error = use_cuda_device(device); *error) return error;
  auto stream = static_cast<cudaStream_t>(stream_handle);
  cudaError_t status =
      bf16 ? launch_typed<__nv_bfloat16>(a, stream) : launch_typed<__half>(a, stream);
  return status == cudaSuccess ? "" : cudaGetErrorString(status);
}

}  // namespace flagstone::engine::detail
