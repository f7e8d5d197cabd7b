// Microbenchmark: how fast one persistent block per SM can stream a large read-only buffer into
// shared memory (bulk copies, or cp.async by every thread) or into registers, and what a grid
// barrier costs; it chose the persistent decode kernel's loading scheme (docs/performance.md).
// Build (from the repository root):
//   nvcc -O3 -arch=sm_90a -std=c++17 -o build-gpu/stream_smem tools/gpu/micro/stream_smem.cu
#include <cuda_runtime.h>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "../../../src/engine/cuda/megakernel_parts.cuh"

// The persistent decode kernel's own helpers (megakernel_parts.cuh), so this measures them.
namespace mega = flagstone::engine::detail::mega;

__device__ __forceinline__ uint32_t sa(const void* p) {
  return mega::shared_address(p);
}

__global__ void bulk_stream(const char* src, int64_t bytes_per_block, int slots, int slot_bytes,
                            float* sink) {
  extern __shared__ __align__(128) unsigned char sm[];
  uint64_t* bars = (uint64_t*)sm;
  unsigned char* ring = sm + 128;
  const char* base = src + blockIdx.x * bytes_per_block;
  int64_t chunks = bytes_per_block / slot_bytes;
  if (threadIdx.x == 0) {
    for (int s = 0; s < slots; ++s) mega::bar_init(bars + s);
    mega::bar_init_fence();
  }
  __syncthreads();
  int64_t issued = 0;
  auto issue = [&]() {
    if (issued >= chunks) return;
    int s = issued % slots;
    mega::bulk_load(ring + (int64_t)s * slot_bytes, base + issued * slot_bytes, slot_bytes,
                    bars + s);
    ++issued;
  };
  if (threadIdx.x == 0)
    for (int s = 0; s < slots; ++s) issue();
  float acc = 0;
  for (int64_t c = 0; c < chunks; ++c) {
    int s = c % slots;
    mega::bar_wait(bars + s, (c / slots) & 1);
    const uint4* w = (const uint4*)(ring + (int64_t)s * slot_bytes);
    for (int i = threadIdx.x; i < slot_bytes / 16; i += blockDim.x) {
      uint4 v = w[i];
      acc += __int_as_float(v.x ^ v.w);
    }
    __syncthreads();
    if (threadIdx.x == 0) issue();
  }
  if (acc == 1.2345f) sink[0] = acc;
}

__global__ void cpasync_stream(const char* src, int64_t bytes_per_block, int slots, int slot_bytes,
                               float* sink) {
  extern __shared__ __align__(128) unsigned char sm[];
  unsigned char* ring = sm;
  const char* base = src + blockIdx.x * bytes_per_block;
  int64_t chunks = bytes_per_block / slot_bytes;
  auto issue = [&](int64_t c) {
    if (c < chunks) {
      int s = c % slots;
      for (int i = threadIdx.x; i < slot_bytes / 16; i += blockDim.x)
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(
                         sa(ring + (int64_t)s * slot_bytes + i * 16)),
                     "l"(base + c * slot_bytes + i * 16)
                     : "memory");
    }
    asm volatile("cp.async.commit_group;" ::: "memory");
  };
  for (int s = 0; s < slots - 1; ++s) issue(s);
  float acc = 0;
  for (int64_t c = 0; c < chunks; ++c) {
    issue(c + slots - 1);
    if (slots == 4)
      asm volatile("cp.async.wait_group 3;" ::: "memory");
    else
      asm volatile("cp.async.wait_group 5;" ::: "memory");
    __syncthreads();
    int s = c % slots;
    const uint4* w = (const uint4*)(ring + (int64_t)s * slot_bytes);
    for (int i = threadIdx.x; i < slot_bytes / 16; i += blockDim.x) {
      uint4 v = w[i];
      acc += __int_as_float(v.x ^ v.w);
    }
    __syncthreads();
  }
  if (acc == 1.2345f) sink[0] = acc;
}

template <int U>
__global__ void reg_stream(const char* src, int64_t bytes_per_block, float* sink) {
  const uint4* base = (const uint4*)(src + blockIdx.x * bytes_per_block);
  int64_t n = bytes_per_block / 16;
  float acc = 0;
  for (int64_t i = threadIdx.x; i < n; i += (int64_t)blockDim.x * U) {
    uint4 v[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      int64_t j = i + u * blockDim.x;
      v[u] = j < n ? __ldg(base + j) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < U; ++u) acc += __int_as_float(v[u].x ^ v[u].w);
  }
  if (acc == 1.2345f) sink[0] = acc;
}

__global__ void barriers(unsigned* counter, int count) {
  unsigned target = 0;
  for (int i = 0; i < count; ++i) {
    target += gridDim.x;
    mega::grid_barrier(counter, target);
  }
}

int main() {
  int sms;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  const int64_t total = int64_t{2304} << 20;  // 2.25 GiB, like the 1B weights
  char* buf;
  cudaMalloc(&buf, total);
  cudaMemset(buf, 1, total);
  float* sink;
  cudaMalloc(&sink, 4);
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  auto timeit = [&](auto launch) {
    launch();
    cudaDeviceSynchronize();
    cudaEventRecord(a);
    for (int r = 0; r < 5; ++r) launch();
    cudaEventRecord(b);
    cudaEventSynchronize(b);
    float ms;
    cudaEventElapsedTime(&ms, a, b);
    return ms / 5;
  };
  int64_t per_block = total / sms / 65536 * 65536;
  double bytes = double(per_block) * sms;
  printf("sms %d, %.2f GiB streamed\n", sms, bytes / (1 << 30));
  for (int threads : {256, 512}) {
    float ms = timeit([&] { reg_stream<8><<<sms, threads>>>(buf, per_block, sink); });
    printf("registers 1 block/SM x %d threads, 8 x 16 B in flight: %.1f GB/s\n", threads,
           bytes / ms / 1e6);
  }
  {
    float ms = timeit([&] { reg_stream<8><<<sms * 4, 512>>>(buf, per_block / 4, sink); });
    printf("registers 4 blocks/SM x 512: %.1f GB/s\n", bytes / ms / 1e6);
  }
  cudaFuncSetAttribute(bulk_stream, cudaFuncAttributeMaxDynamicSharedMemorySize, 227 * 1024);
  cudaFuncSetAttribute(cpasync_stream, cudaFuncAttributeMaxDynamicSharedMemorySize, 227 * 1024);
  for (int slot : {8192, 16384, 32768})
    for (int slots : {2, 4, 6}) {
      if (slot * slots > 220 * 1024) continue;
      float ms = timeit([&] {
        bulk_stream<<<sms, 512, 128 + slot * slots>>>(buf, per_block, slots, slot, sink);
      });
      printf("bulk copies: %d slots x %d KiB: %.1f GB/s\n", slots, slot / 1024, bytes / ms / 1e6);
    }
  for (int slot : {8192, 16384, 32768})
    for (int slots : {4, 6}) {
      if (slot * slots > 220 * 1024) continue;
      float ms = timeit(
          [&] { cpasync_stream<<<sms, 512, slot * slots>>>(buf, per_block, slots, slot, sink); });
      printf("cp.async: %d slots x %d KiB: %.1f GB/s\n", slots, slot / 1024, bytes / ms / 1e6);
    }
  unsigned* counter;
  cudaMalloc(&counter, 4);
  for (int count : {100, 1000}) {
    float ms = timeit([&] {
      cudaMemset(counter, 0, 4);
      barriers<<<sms, 512>>>(counter, count);
    });
    printf("grid barrier (%d blocks): %.2f us each\n", sms, ms * 1000 / count);
  }
  printf("%s\n", cudaGetErrorString(cudaGetLastError()));
}
