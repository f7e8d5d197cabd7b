// Hopper's bulk-copy engine (cp.async.bulk, sm_90) and the transaction barriers (mbarrier) that
// say when a copy has landed: weights stream into shared memory with one instruction per chunk.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace flagstone::ops::cuda::bulk {

__device__ __forceinline__ uint32_t shared_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// A barrier whose phase completes after `arrivals` arrivals (and, for copies, their bytes).
__device__ __forceinline__ void bar_init(uint64_t* bar, uint32_t arrivals = 1) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(shared_address(bar)), "r"(arrivals)
               : "memory");
}

// Makes the barriers' initialization visible to the bulk-copy engine (the async proxy).
__device__ __forceinline__ void bar_init_fence() {
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}

// Waits until the phase `parity` of `bar` has completed.
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

// One arrival (a consumer done with the buffer the barrier guards).
__device__ __forceinline__ void bar_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(shared_address(bar)) : "memory");
}

// The L2 policy for data read once (streamed weights): leave L2 first.
__device__ __forceinline__ uint64_t evict_first_policy() {
  uint64_t policy;
  asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(policy));
  return policy;
}

// The L2 policy for data read again soon (a weight kept for the next decode step): leave L2 last.
__device__ __forceinline__ uint64_t evict_last_policy() {
  uint64_t policy;
  asm volatile("createpolicy.fractional.L2::evict_last.b64 %0, 1.0;" : "=l"(policy));
  return policy;
}

// One bulk copy of `bytes` (a multiple of 16, both addresses 16-byte aligned) from global memory
// into shared memory, completing on `bar`, under the L2 `policy`.
__device__ __forceinline__ void load(void* dst, const void* src, uint32_t bytes, uint64_t* bar,
                                     uint64_t policy) {
  const uint32_t b = shared_address(bar);
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(b), "r"(bytes)
               : "memory");
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint"
      " [%0], [%1], %2, [%3], %4;" ::"r"(shared_address(dst)),
      "l"(src), "r"(bytes), "r"(b), "l"(policy)
      : "memory");
}

// The same, streamed weights marked to leave L2 first.
__device__ __forceinline__ void load(void* dst, const void* src, uint32_t bytes, uint64_t* bar) {
  load(dst, src, bytes, bar, evict_first_policy());
}

}  // namespace flagstone::ops::cuda::bulk
