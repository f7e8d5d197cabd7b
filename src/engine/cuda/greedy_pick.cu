// The decode step's greedy pick: each row of logits is split over many blocks (one block would
// stream a 128k vocabulary alone), each finds its best with 16-byte loads, and the row's last
// block to finish (a ticket it resets) picks among them, writes the id and moves the sequence's
// position and length on by one, so the next recorded step starts where this one ended.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>

#include "cuda/greedy_order.cuh"
#include "cuda/pdl.cuh"
#include "kv_cache_write.h"

namespace flagstone::engine::detail {
namespace {

constexpr int kThreads = 256;

using ops::cuda::Pick;
using ops::cuda::picked_before;
using ops::cuda::warp_best;
static_assert(sizeof(Pick) == kGreedyPickBytes);

// Every thread of the block gets the block's best.
__device__ Pick block_best(Pick p, Pick* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  p = warp_best(p);
  if (lane == 0) scratch[warp] = p;
  __syncthreads();
  p = lane < kThreads / 32 ? scratch[lane] : Pick{0, -1};
  return warp_best(p);
}

__device__ __forceinline__ float to_float(float v) {
  return v;
}
__device__ __forceinline__ float to_float(__half v) {
  return __half2float(v);
}
__device__ __forceinline__ float to_float(__nv_bfloat16 v) {
  return __bfloat162float(v);
}

template <typename T, bool kVector>
__global__ void __launch_bounds__(kThreads) greedy_pick(GreedyArgs a) {
  ops::cuda::wait_for_previous_kernel();
  __shared__ Pick scratch[kThreads / 32];
  __shared__ bool last;
  const int64_t row = blockIdx.y, chunk = blockIdx.x, chunks = gridDim.x;
  const T* x = static_cast<const T*>(a.logits) + row * a.row_stride;
  const int64_t per = (a.n + chunks - 1) / chunks;  // a multiple of 8 on the vector path
  const int64_t begin = chunk * per, end = min(a.n, begin + per);
  Pick best{0, -1};
  if constexpr (kVector) {
    constexpr int kPack = 16 / sizeof(T);
    for (int64_t j = begin + threadIdx.x * kPack; j < end; j += kThreads * kPack) {
      const uint4 raw = *reinterpret_cast<const uint4*>(x + j);
      const T* v = reinterpret_cast<const T*>(&raw);
#pragma unroll
      for (int e = 0; e < kPack; ++e) {
        const Pick c{to_float(v[e]), j + e};
        if (picked_before(c, best)) best = c;
      }
    }
  } else {
    for (int64_t j = begin + threadIdx.x; j < end; j += kThreads) {
      const Pick c{to_float(x[j]), j};
      if (picked_before(c, best)) best = c;
    }
  }
  best = block_best(best, scratch);
  Pick* partial = static_cast<Pick*>(a.scratch) + row * chunks;
  if (threadIdx.x == 0) {
    partial[chunk] = best;
    __threadfence();
    const unsigned ticket = atomicAdd(a.counters + row, 1u);
    last = ticket == static_cast<unsigned>(chunks - 1);
    if (last) atomicExch(a.counters + row, 0u);
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  Pick p{0, -1};
  for (int64_t c = threadIdx.x; c < chunks; c += kThreads) {
    const volatile Pick* theirs = partial + c;
    const Pick q{theirs->value, theirs->index};
    if (picked_before(q, p)) p = q;
  }
  __syncthreads();  // scratch is reused
  p = block_best(p, scratch);
  if (threadIdx.x == 0) {
    a.out[row * a.out_stride] = p.index;
    if (a.step) {
      const int64_t position = a.step[row];
      // A plain store over the bus: the host reads it once an event after the step completes.
      if (a.host_ids) a.host_ids[position % kGreedyHostSlots * a.rows + row] = p.index;
      a.step[row] = position + 1;  // position
      a.step[a.rows + row] += 1;   // length
    }
  }
}

template <typename T>
cudaError_t launch_typed(const GreedyArgs& a, cudaStream_t stream) {
  constexpr int64_t kPack = 16 / sizeof(T);
  const bool vector = (reinterpret_cast<uintptr_t>(a.logits) & 15u) == 0 && a.n % kPack == 0 &&
                      a.row_stride % kPack == 0;
  // Blocks of at least two packs per thread, at most kMaxGreedyChunks per row.
  const int64_t unit = kThreads * kPack;
  int64_t chunks =
      std::max<int64_t>(1, std::min<int64_t>((a.n + 2 * unit - 1) / (2 * unit), kMaxGreedyChunks));
  int64_t per = (a.n + chunks - 1) / chunks;
  per = (per + kPack - 1) / kPack * kPack;
  chunks = (a.n + per - 1) / per;
  const dim3 grid(static_cast<unsigned>(chunks), static_cast<unsigned>(a.rows));
  return ops::cuda::launch_with_pdl(vector ? greedy_pick<T, true> : greedy_pick<T, false>, grid,
                                    dim3(kThreads), 0, stream, a);
}

}  // namespace

const char* launch_greedy_pick(const GreedyArgs& a, int element_bytes, bool bf16, int device,
                               void* stream_handle) {
  if (a.rows <= 0) return "";
  if (a.n <= 0 || a.rows > 65535) return "unsupported shape for the greedy pick";
  if (const char* error = use_cuda_device(device); *error) return error;
  auto stream = static_cast<cudaStream_t>(stream_handle);
  cudaError_t status = element_bytes == 4 ? launch_typed<float>(a, stream)
                       : bf16             ? launch_typed<__nv_bfloat16>(a, stream)
                                          : launch_typed<__half>(a, stream);
  return status == cudaSuccess ? "" : cudaGetErrorString(status);
}

int64_t* host_ids_on_device(void* host, int device) {
  void* mapped = nullptr;
  if (host == nullptr || *use_cuda_device(device) ||
      cudaHostGetDevicePointer(&mapped, host, 0) != cudaSuccess) {
    (void)cudaGetLastError();  // not sticky; cleared so later launches do not report it
    return nullptr;
  }
  return static_cast<int64_t*>(mapped);
}

}  // namespace flagstone::engine::detail
