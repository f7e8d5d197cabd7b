// The device side of the streamed GEMV (gemv_stream.cu): a block's copy-issuing warp streams
// weight rows through a shared-memory ring, its consumer warps sum each row against staged x.
#pragma once

// Shared with the engine's kernels that stream a product before work of their own (the q/k/v
// product before attention, engine/cuda/qkv_attention.cu), so the ring protocol lives once.

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/bulk_copy.cuh"
#include "cuda/device_utils.cuh"
#include "cuda/gemv.h"

namespace flagstone::ops::cuda::streamed {

constexpr int kConsumerWarps = 8;
constexpr int kConsumers = kConsumerWarps * 32;
constexpr int kThreads = kConsumers + 32;  // the last warp issues the copies
// A chunk is one bulk copy and one warp's work: 2 to 16 KiB (128 to 1024 packs of 16 bytes),
// dividing the row, so a chunk never straddles two rows.
constexpr int kSmallChunkPacks = 128;
constexpr int kMaxChunkPacks = 1024;

// The consumers' own barrier (the copy-issuing warp never joins it).
__device__ __forceinline__ void consumers_sync() {
  asm volatile("bar.sync 1, %0;" ::"n"(kConsumers) : "memory");
}

template <typename T>
__device__ __forceinline__ float dot(uint4 w, uint4 x) {
  constexpr int V = Pack<T>::kCount;
  float wf[V], xf[V];
  unpack<T>(w, wf);
  unpack<T>(x, xf);
  float s = 0;
#pragma unroll
  for (int i = 0; i < V; ++i) s = fmaf(wf[i], xf[i], s);
  return s;
}

// Shared memory: the ring (slots chunks), x (k elements), the norm weight (k elements, with the
// norm prologue), one f32 sum per owned row, the norm's per-warp partial sums, then the full and
// empty barrier of every slot.
struct Layout {
  size_t x = 0, nw = 0, sums = 0, red = 0, bars = 0, total = 0;
};
__host__ __device__ inline Layout layout_of(int slots, int chunk_packs, int64_t row_packs,
                                            int64_t rows_max, bool norm) {
  Layout l;
  l.x = static_cast<size_t>(slots) * chunk_packs * 16;
  l.nw = l.x + static_cast<size_t>(row_packs) * 16;
  l.sums = l.nw + (norm ? static_cast<size_t>(row_packs) * 16 : 0);
  l.red = l.sums + static_cast<size_t>(rows_max) * 4;
  l.bars = (l.red + (kConsumerWarps + 1) * 4 + 7) / 8 * 8;
  l.total = l.bars + static_cast<size_t>(2 * slots) * 8;
  return l;
}

// Where a block's shared memory regions start, from its layout.
struct Regions {
  uint4 *ring, *xs, *nws;
  float *sums, *red;
  uint64_t *full, *empty;  // per slot
};
__device__ __forceinline__ Regions regions_of(unsigned char* shared, const Layout& l, int slots) {
  Regions r;
  r.ring = reinterpret_cast<uint4*>(shared);
  r.xs = reinterpret_cast<uint4*>(shared + l.x);
  r.nws = reinterpret_cast<uint4*>(shared + l.nw);
  r.sums = reinterpret_cast<float*>(shared + l.sums);
  r.red = reinterpret_cast<float*>(shared + l.red);
  r.full = reinterpret_cast<uint64_t*>(shared + l.bars);
  r.empty = r.full + slots;
  return r;
}

// x -> shared memory with the prologue applied, rounded to T as the unfused ops round (the same
// formulas as the fused GEMV's stage_x). Runs after the wait, on the consumer threads only; the
// norm weight is in nws already.
template <typename T>
__device__ void stage_x(const FusedGemvArgs& a, uint4* xs, const uint4* nws, int64_t row_packs,
                        float* red) {
  constexpr int V = Pack<T>::kCount;
  const auto* xg = static_cast<const uint4*>(a.x);
  // The embedding row (x_index): NaN for an id out of range; the first block keeps the raw row.
  bool valid = true;
  uint4* keep = nullptr;
  if (a.x_index) {
    const int64_t id = *a.x_index;
    valid = id >= 0 && id < a.x_rows;
    xg += valid ? id * (a.ldx / V) : 0;
    if (blockIdx.x == 0) keep = static_cast<uint4*>(a.x_out);
  }
  auto load = [&](int64_t p) { return valid ? __ldg(xg + p) : make_uint4(~0u, ~0u, ~0u, ~0u); };
  if (a.prologue == GemvPrologue::kSiluMul) {  // never with x_index (refused)
    const int64_t up = a.k / V;                // u follows g in the x row
    for (int64_t p = threadIdx.x; p < row_packs; p += kConsumers) {
      float g[V], u[V], o[V];
      unpack<T>(__ldg(xg + p), g);
      unpack<T>(__ldg(xg + up + p), u);
#pragma unroll
      for (int e = 0; e < V; ++e) o[e] = g[e] / (1.0f + expf(-g[e])) * u[e];
      xs[p] = pack<T>(o);
    }
    return;
  }
  if (a.prologue == GemvPrologue::kNone) {
    for (int64_t p = threadIdx.x; p < row_packs; p += kConsumers) {
      const uint4 raw = load(p);
      xs[p] = raw;
      if (keep) keep[p] = raw;
    }
    return;
  }
  float ss = 0;
  for (int64_t p = threadIdx.x; p < row_packs; p += kConsumers) {
    const uint4 raw = load(p);
    xs[p] = raw;
    if (keep) keep[p] = raw;
    float v[V];
    unpack<T>(raw, v);
#pragma unroll
    for (int e = 0; e < V; ++e) ss = fmaf(v[e], v[e], ss);
  }
  ss = warp_sum(ss);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (lane == 0) red[warp] = ss;
  consumers_sync();
  float total = 0;
#pragma unroll
  for (int w = 0; w < kConsumerWarps; ++w) total += red[w];
  const float scale = rsqrtf(total / static_cast<float>(a.k) + a.eps);
  for (int64_t p = threadIdx.x; p < row_packs; p += kConsumers) {
    float v[V], w[V];
    unpack<T>(xs[p], v);
    unpack<T>(nws[p], w);
#pragma unroll
    for (int e = 0; e < V; ++e) v[e] = v[e] * scale * w[e];
    xs[p] = pack<T>(v);
  }
}

// The copy-issuing lane: `chunks` chunks of chunk_packs packs from w + base on (from chunk
// `jump_at` on, from w + jump_base instead: the silu epilogue's second run), each into the next
// ring slot once its consumer has released it. Never waits on the kernel in front: the weights are
// constant while it runs.
__device__ __forceinline__ void issue_chunks(const uint4* w, int64_t base, int64_t chunks,
                                             int64_t jump_at, int64_t jump_base, int chunk_packs,
                                             int slots, uint4* ring, uint64_t* full,
                                             uint64_t* empty, uint64_t policy) {
  // Slot and phase advance by counting (64-bit division is a long software routine).
  const auto bytes = static_cast<uint32_t>(chunk_packs * 16);
  int s = 0;
  uint32_t phase = 0;
  for (int64_t i = 0; i < chunks; ++i) {
    if (i >= slots) bulk::bar_wait(empty + s, phase ^ 1);
    if (i == jump_at) base = jump_base - jump_at * chunk_packs;
    bulk::load(ring + int64_t{s} * chunk_packs, w + base + i * chunk_packs, bytes, full + s,
               policy);
    if (++s == slots) s = 0, phase ^= 1;
  }
}

// The consumer warps: chunk i holds packs of row i * chunk_packs / row_packs; its product with x
// (xs) goes to sums[row] (whole rows stored, parts of rows added). Every consumer thread calls it.
template <typename T>
__device__ __forceinline__ void consume_chunks(const uint4* ring, const uint4* xs, float* sums,
                                               int64_t chunks, int64_t row_packs, int chunk_packs,
                                               int slots, uint64_t* full, uint64_t* empty) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  // Each warp takes every kConsumerWarps-th chunk on its own, so no warp waits for another's.
  // Chunk i sits in slot i % slots in phase (i / slots) & 1 (slots is a multiple of the warps: a
  // slot is always the same warp's) and holds packs k0.. of row `row`: all advanced by counting.
  const bool whole_rows = chunk_packs == row_packs;
  int s = warp % slots;
  uint32_t phase = (warp / slots) & 1;
  int64_t row = 0, k0 = int64_t{warp} * chunk_packs;
  while (k0 >= row_packs) k0 -= row_packs, ++row;
  for (int64_t i = warp; i < chunks; i += kConsumerWarps) {
    bulk::bar_wait(full + s, phase);
    const uint4* chunk = ring + int64_t{s} * chunk_packs;
    float acc = 0;
#pragma unroll 4
    for (int j = lane; j < chunk_packs; j += 32) acc += dot<T>(chunk[j], xs[k0 + j]);
    acc = warp_sum(acc);
    __syncwarp();
    if (lane == 0) {
      bulk::bar_arrive(empty + s);
      if (whole_rows)
        sums[row] = acc;
      else
        atomicAdd(sums + row, acc);
    }
    s += kConsumerWarps;
    while (s >= slots) s -= slots, phase ^= 1;
    k0 += int64_t{kConsumerWarps} * chunk_packs;
    while (k0 >= row_packs) k0 -= row_packs, ++row;
  }
}

// Thread kConsumers of the block, before the block synchronizes: the ring's full and empty
// barriers, made visible to the bulk-copy engine.
__device__ __forceinline__ void init_ring(uint64_t* full, uint64_t* empty, int slots) {
  for (int s = 0; s < slots; ++s) {
    bulk::bar_init(full + s);
    bulk::bar_init(empty + s);
  }
  bulk::bar_init_fence();
}

}  // namespace flagstone::ops::cuda::streamed
