// Building blocks of the persistent decode kernel: a grid-wide barrier, and a ring of weight
// chunks that the Hopper bulk-copy engine streams into shared memory ahead of the compute.
//
// Weights never change during a step, so a block can ask for the next layers' weights while it
// waits on a barrier for activations: the ring keeps memory busy across the step's latency chains
// (norms, attention), which is what separate kernels could not do.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/bulk_copy.cuh"

namespace flagstone::engine::detail::mega {

inline constexpr int kThreads = 256;
inline constexpr int kWarps = kThreads / 32;
inline constexpr int kMaxSlots = 8;

// Every block of the grid arrives, then waits until all have: `target` is the running total of
// arrivals (blocks times barriers so far), the counter is zeroed before the launch. The block's
// barrier orders its threads' writes before thread 0's release-add, which publishes them; the
// acquire-load orders the reads after the wait. (Release and acquire instead of two sequentially
// consistent fences.)
__device__ __forceinline__ void grid_barrier(unsigned* counter, unsigned target) {
  __syncthreads();
  if (threadIdx.x == 0) {
    asm volatile("red.release.gpu.global.add.u32 [%0], 1;" ::"l"(counter) : "memory");
    unsigned seen;
    do {
      asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(seen) : "l"(counter) : "memory");
    } while (seen < target);
  }
  __syncthreads();
}

// The bulk-copy and barrier helpers are the ops library's (its streamed GEMV uses them too).
using ops::cuda::bulk::bar_init;
using ops::cuda::bulk::bar_init_fence;
using ops::cuda::bulk::bar_wait;
using ops::cuda::bulk::load;
using ops::cuda::bulk::shared_address;

// Rows [begin, end) of an n-row product that block `b` of `blocks` computes.
struct Rows {
  int64_t begin = 0, end = 0;
};
// 32-bit arithmetic: the planner keeps n * blocks under 2^32.
__device__ __forceinline__ Rows rows_of(int64_t n, int64_t b, int64_t blocks) {
  const auto n32 = static_cast<uint32_t>(n), b32 = static_cast<uint32_t>(b);
  const auto blocks32 = static_cast<uint32_t>(blocks);
  return Rows{b32 * n32 / blocks32, (b32 + 1) * n32 / blocks32};
}

// Sum over the block; every thread gets it. `red` holds kWarps + 1 floats.
__device__ __forceinline__ float block_sum(float v, float* red) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if (lane == 0) red[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float t = lane < kWarps ? red[lane] : 0.0f;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) t += __shfl_xor_sync(0xffffffffu, t, o);
    if (lane == 0) red[kWarps] = t;
  }
  __syncthreads();
  const float total = red[kWarps];
  __syncthreads();  // red is reused by the next call
  return total;
}

}  // namespace flagstone::engine::detail::mega
