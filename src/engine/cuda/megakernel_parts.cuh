// Building blocks of the persistent decode kernel: a grid-wide barrier, and a ring of weight
// chunks that the Hopper bulk-copy engine streams into shared memory ahead of the compute.
//
// Weights never change during a step, so a block can ask for the next layers' weights while it
// waits on a barrier for activations: the ring keeps memory busy across the step's latency chains
// (norms, attention), which is what separate kernels could not do.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

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

__device__ __forceinline__ uint32_t shared_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void bar_init(uint64_t* bar) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(shared_address(bar)) : "memory");
}

// Makes the barriers' initialization visible to the bulk-copy engine (the async proxy).
__device__ __forceinline__ void bar_init_fence() {
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}

// Waits until the copy tracked by `bar` in its phase `parity` has landed.
__device__ __forceinline__ void bar_wait(uint64_t* bar, uint32_t parity) {
  const uint32_t addr = shared_address(bar);
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
        " selp.u32 %0, 1, 0, p;\n}"
        : "=r"(done)
        : "r"(addr), "r"(parity)
        : "memory");
  } while (!done);
}

// One bulk copy of `bytes` (a multiple of 16, both addresses 16-byte aligned) from global memory
// into shared memory, completing on `bar`; streamed weights are marked to leave L2 first.
__device__ __forceinline__ void bulk_load(void* dst, const void* src, uint32_t bytes,
                                          uint64_t* bar) {
  const uint32_t b = shared_address(bar);
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(b), "r"(bytes)
               : "memory");
  uint64_t policy;
  asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(policy));
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint"
      " [%0], [%1], %2, [%3], %4;" ::"r"(shared_address(dst)),
      "l"(src), "r"(bytes), "r"(b), "l"(policy)
      : "memory");
}

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
