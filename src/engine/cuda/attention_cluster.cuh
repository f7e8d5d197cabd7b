// The split merge of the decode attention core through a thread-block cluster (sm_90): a group's
// splits write their states into the first split's shared memory, which merges them.
//
// The splits run as one cluster and meet at a cluster barrier, so the merge makes no global round
// trip. Why: the core's global merge (partials, a fenced ticket, the last split reading them back)
// is three dependent trips to L2 after the attention itself, most of a short decode attention's
// time. Every block calls cluster_start() when it starts, then attend_cluster() or, for a split
// with no keys, returns: an exited thread counts as arrived at every later cluster barrier (PTX
// `exit`), so a block leaves as soon as its part is written and frees its SM for the next kernel.
#pragma once

#include "../../ops/cuda/attention_decode.cuh"

namespace flagstone::decode_core {

// Splits one cluster may hold: at most 16 blocks (a non-portable cluster size on sm_90), and
// their states (G heads of D values and a 4-float header each) within 24 KiB of shared memory.
template <int D, int G>
inline constexpr int kMaxClusterSplits = 6144 / (G * (D + 4)) < 16 ? 6144 / (G * (D + 4)) : 16;

// Clusters are sm_90's: the host takes this path only there (rope_attention_clusters), and an
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

// The combined state of a split's W warps (their states in `merge`, as attend_states leaves
// them) written into rank 0's `states` at row `index`: per head D values, max, sum, bad flag.
// Called by the block's `threads` threads after the first phase's wait.
template <int W, int G, int D>
__device__ __forceinline__ void publish_split(const float* merge, float* states, int64_t index,
                                              bool bad, int threads) {
  float* leader = in_rank(states, 0);
  for (int idx = threadIdx.x; idx < G * D; idx += threads) {
    const int g = idx / D, c = idx % D;
    float big, sum, value;
    combine_warps<W, G, D>(merge, g, c, big, sum, value);
    float* mine = leader + (index * G + g) * (D + 4);
    mine[c] = value;
    if (c == 0) mine[D] = big, mine[D + 1] = sum, mine[D + 2] = bad ? 1.0f : 0.0f;
  }
}

// Rank 0, after the second phase's wait: the first `splits` published states merged as
// merge_splits merges the workspace's, element c of head g written to out[g * out_head + c *
// out_elem].
template <typename T, int G, int D>
__device__ __forceinline__ void merge_published(const float* states, int64_t splits, T* out,
                                                int64_t out_head, int64_t out_elem, bool empty,
                                                int threads) {
  for (int idx = threadIdx.x; idx < G * D; idx += threads) {
    const int g = idx / D, c = idx % D;
    float big = -INFINITY;
    for (int64_t s = 0; s < splits; ++s) big = fmaxf(big, states[(s * G + g) * (D + 4) + D]);
    float total = 0, value = 0;
    bool flagged = false;
    for (int64_t s = 0; s < splits; ++s) {
      const float* theirs = states + (s * G + g) * (D + 4);
      const float w = rescale(theirs[D], big);
      total += theirs[D + 1] * w;
      value += theirs[c] * w;
      flagged |= theirs[D + 2] != 0.0f;
    }
    out[g * out_head + c * out_elem] = round_to<T>(finish(value, total, flagged, empty));
  }
}

// attend() for a group whose splits are the blocks of one cluster (t.index is the block's rank):
// each split publishes its state into rank 0's shared memory, which merges them.
template <typename T, int D, int G, typename RowFn>
__device__ __forceinline__ void attend_cluster(const float (&q)[G][8], const GroupTask<T>& t,
                                               RowFn row_at,
                                               const Pass<Tile<D, G>::kUnroll>* first) {
  __shared__ float merge[merge_floats(D, G)];
  __shared__ float states[kMaxClusterSplits<D, G> * G * (D + 4)];
  const bool bad = attend_states<T, D, G>(q, t, row_at, first, merge);
  if (t.split.active == 1) {  // one split holds every key: no merge
    for (int idx = threadIdx.x; idx < G * D; idx += kThreads) {
      const int g = idx / D, c = idx % D;
      float big, sum, value;
      combine_warps<kWarps, G, D>(merge, g, c, big, sum, value);
      t.out[g * t.out_head + c * t.out_elem] = round_to<T>(finish(value, sum, bad, t.empty));
    }
    return;
  }
  cluster_wait();
  publish_split<kWarps, G, D>(merge, states, t.index, bad, kThreads);
  cluster_arrive();
  if (t.index != 0) return;
  cluster_wait();
  merge_published<T, G, D>(states, t.split.active, t.out, t.out_head, t.out_elem, t.empty,
                           kThreads);
}

}  // namespace flagstone::decode_core
