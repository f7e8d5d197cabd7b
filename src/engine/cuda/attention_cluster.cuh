// The split merge of the decode attention core through a thread-block cluster: the splits of one
// GQA group run as one cluster (sm_90), write their states into the first split's shared memory
// and meet at a cluster barrier, so the first split merges with no global round trip.
//
// Why: the core's global merge (partials, a fenced ticket, the last split reading them back) is
// three dependent trips to L2 after the attention itself, most of a short decode attention's time.
// Every block calls cluster_start() when it starts, then attend_cluster() or, for a split with no
// keys, returns: an exited thread counts as arrived at every later cluster barrier (PTX `exit`),
// so a block leaves as soon as its part is written and frees its SM for the next kernel.
#pragma once

#include "../../ops/cuda/attention_decode.cuh"

namespace flagstone::decode_core {

// Splits one cluster may hold: at most 16 blocks (a non-portable cluster size on sm_90), and
// their states (G heads of D values and a 4-float header each) within 24 KiB of shared memory.
template <int D, int G>
inline constexpr int kMaxClusterSplits = 6144 / (G * (D + 4)) < 16 ? 6144 / (G * (D + 4)) : 16;

// Clusters are sm_90's: the host takes this path only there (rope_attention_clustered), and an
// older device's code traps.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
__device__ __forceinline__ void cluster_arrive_relaxed() {
  asm volatile("barrier.cluster.arrive.relaxed.aligned;" ::: "memory");
}
__device__ __forceinline__ void cluster_arrive() {
  asm volatile("barrier.cluster.arrive.release.aligned;" ::: "memory");
}
__device__ __forceinline__ void cluster_wait() {
  asm volatile("barrier.cluster.wait.acquire.aligned;" ::: "memory");
}
// The generic address of `p` (a shared variable) in the block of cluster rank `rank`.
__device__ __forceinline__ float* in_rank(float* p, unsigned rank) {
  float* out;
  asm volatile("mapa.u64 %0, %1, %2;" : "=l"(out) : "l"(p), "r"(rank));
  return out;
}
#else
__device__ __forceinline__ void cluster_arrive_relaxed() {
  __trap();
}
__device__ __forceinline__ void cluster_arrive() {
  __trap();
}
__device__ __forceinline__ void cluster_wait() {
  __trap();
}
__device__ __forceinline__ float* in_rank(float* p, unsigned) {
  __trap();
  return p;
}
#endif

// Every block, first: the first phase's arrival, whose wait before the remote writes makes sure
// the first split's block (so its shared memory) has started.
__device__ __forceinline__ void cluster_start() {
  cluster_arrive_relaxed();
}

// attend() for a group whose splits are the blocks of one cluster (t.index is the block's rank):
// each split's combined state goes into rank 0's `states` [split][head][D values, max, sum, bad],
// then rank 0 merges them as merge_splits does and writes the output.
template <typename T, int D, int G, typename RowFn>
__device__ __forceinline__ void attend_cluster(const float (&q)[G][8], const GroupTask<T>& t,
                                               RowFn row_at,
                                               const Pass<Tile<D, G>::kUnroll>* first) {
  constexpr int kStride = D + 4;
  __shared__ float merge[kMergeFloats<D, G>];
  __shared__ float states[kMaxClusterSplits<D, G> * G * kStride];
  const bool bad = attend_states<T, D, G>(q, t, row_at, first, merge);
  const bool whole = t.split.active == 1;
  if (!whole) cluster_wait();
  float* leader = whole ? nullptr : in_rank(states, 0);
  for (int idx = threadIdx.x; idx < G * D; idx += kThreads) {
    const int g = idx / D, c = idx % D;
    float big, sum, value;
    combine_warps<kWarps, G, D>(merge, g, c, big, sum, value);
    if (whole) {
      t.out[g * t.out_head + c * t.out_elem] = round_to<T>(finish(value, sum, bad, t.empty));
      continue;
    }
    float* mine = leader + (t.index * G + g) * kStride;
    mine[c] = value;
    if (c == 0) mine[D] = big, mine[D + 1] = sum, mine[D + 2] = bad ? 1.0f : 0.0f;
  }
  if (whole) return;
  cluster_arrive();
  if (t.index != 0) return;
  cluster_wait();
  const int64_t active = t.split.active;
  for (int idx = threadIdx.x; idx < G * D; idx += kThreads) {
    const int g = idx / D, c = idx % D;
    float big = -INFINITY;
    for (int64_t s = 0; s < active; ++s) big = fmaxf(big, states[(s * G + g) * kStride + D]);
    float total = 0, value = 0;
    bool flagged = false;
    for (int64_t s = 0; s < active; ++s) {
      const float* theirs = states + (s * G + g) * kStride;
      const float w = rescale(theirs[D], big);
      total += theirs[D + 1] * w;
      value += theirs[c] * w;
      flagged |= theirs[D + 2] != 0.0f;
    }
    t.out[g * t.out_head + c * t.out_elem] = round_to<T>(finish(value, total, flagged, t.empty));
  }
}

}  // namespace flagstone::decode_core
