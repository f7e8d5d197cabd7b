// Microbenchmark: what one block per SM spends computing a chunk of weight rows against x, both
// in shared memory, for the persistent decode kernel's product loops (FMA on unpacked floats, or
// tensor-core mma), with and without bulk copies landing in a second slot meanwhile.
// Build (from the repository root):
//   nvcc -O3 -arch=sm_90a -std=c++17 -Isrc/ops -o build-gpu/product_smem \
//     tools/gpu/micro/product_smem.cu
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>

#include "../../../src/engine/cuda/megakernel_parts.cuh"
#include "../../../src/ops/cuda/attention_decode.cuh"

namespace mega = flagstone::engine::detail::mega;
namespace decode_core = flagstone::decode_core;

constexpr int kRows = 16, kK = 2048, kThreads = 256, kWarps = 8;
constexpr int kChunkBytes = kRows * kK * 2;

__device__ __forceinline__ void mma_row(float (&d)[4], uint32_t x01, uint32_t x23, uint32_t w01,
                                        uint32_t w23) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%4,%5,%5}, "
      "{%6,%7}, {%0,%1,%2,%3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(x01), "r"(x23), "r"(w01), "r"(w23));
}

// mode 0: FMA, 2 rows per warp (the session-16 loop); 1: mma, 8 rows per warp and k split over
// 4 warps; 2: mma with 4 independent accumulators; 3: mma reading without bank conflicts (wrong
// sums: it times the tensor cores); 4: FMA, 4 rows per warp over half of k; 5: no loads, mma only.
// copies: a bulk copy of a chunk into the other slot per chunk computed.
__global__ void product(const char* src, int mode, int copies, int reps, float* out,
                        long long* cycles) {
  extern __shared__ __align__(128) unsigned char sm[];
  uint64_t* bar = reinterpret_cast<uint64_t*>(sm);
  const uint4* x = reinterpret_cast<const uint4*>(sm + 128);
  unsigned char* w0 = sm + 128 + kK * 2;
  unsigned char* w1 = w0 + kChunkBytes;
  for (int i = threadIdx.x; i < (kK * 2 + 2 * kChunkBytes) / 16; i += kThreads)
    reinterpret_cast<uint4*>(sm + 128)[i] = make_uint4(0x3f803f80u ^ i, 0x3f80u, i, 0x3f00u);
  if (threadIdx.x == 0) {
    mega::bar_init(bar);
    mega::bar_init_fence();
  }
  __syncthreads();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float total = 0;
  const long long t0 = clock64();
  for (int r = 0; r < reps; ++r) {
    if (copies && threadIdx.x == 0)
      mega::bulk_load(w1, src + (int64_t(blockIdx.x) * reps + r) % 64 * kChunkBytes, kChunkBytes,
                      bar);
    const uint4* w = reinterpret_cast<const uint4*>(w0);
    if (mode == 0) {
      float acc[2] = {0, 0};
#pragma unroll 1
      for (int p = lane; p < kK / 8; p += 32) {
        float xv[8];
        decode_core::unpack8<__nv_bfloat16>(x[p], xv);
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          float wv[8];
          decode_core::unpack8<__nv_bfloat16>(w[(warp + j * kWarps) * (kK / 8) + p], wv);
#pragma unroll
          for (int e = 0; e < 8; ++e) acc[j] += wv[e] * xv[e];
        }
      }
      total += acc[0] + acc[1];
    } else if (mode == 4) {
      float acc[4] = {0, 0, 0, 0};
      const int half = warp & 1, set = warp >> 1;  // rows set*4 .. set*4+3, k half
#pragma unroll 1
      for (int p = half * (kK / 16) + lane; p < (half + 1) * (kK / 16); p += 32) {
        float xv[8];
        decode_core::unpack8<__nv_bfloat16>(x[p], xv);
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          float wv[8];
          decode_core::unpack8<__nv_bfloat16>(w[(set * 4 + j) * (kK / 8) + p], wv);
#pragma unroll
          for (int e = 0; e < 8; ++e) acc[j] += wv[e] * xv[e];
        }
      }
      total += acc[0] + acc[1] + acc[2] + acc[3];
    } else {
      const int g = lane >> 2, c = lane & 3, part = warp % 4, group = warp / 4;
      const uint4* wr = w + (group * 8 + g) * (kK / 8);
      float d[4][4] = {};
      if (mode == 3) {
        const uint4* wl = w + (group * 8) * (kK / 8) + lane;  // 32 lanes, 512 contiguous bytes
#pragma unroll 2
        for (int step = part; step < kK / 32; step += 4) {
          const uint4 wp = wl[step * 32], xp = x[step * 4 + c];
          mma_row(d[0], xp.x, xp.y, wp.x, wp.y);
          mma_row(d[1], xp.z, xp.w, wp.z, wp.w);
        }
      } else if (mode == 5) {
        const uint4 wp = wr[c], xp = x[c];
#pragma unroll 2
        for (int step = part; step < kK / 32; step += 4) {
          mma_row(d[0], xp.x, xp.y, wp.x, wp.y);
          mma_row(d[1], xp.z, xp.w, wp.z, wp.w);
        }
      } else if (mode == 1) {
#pragma unroll 2
        for (int step = part; step < kK / 32; step += 4) {
          const uint4 wp = wr[step * 4 + c], xp = x[step * 4 + c];
          mma_row(d[0], xp.x, xp.y, wp.x, wp.y);
          mma_row(d[1], xp.z, xp.w, wp.z, wp.w);
        }
      } else {
#pragma unroll 4
        for (int step = part; step < kK / 32; step += 4) {
          const uint4 wp = wr[step * 4 + c], xp = x[step * 4 + c];
          const int q = (step / 4) & 1;
          mma_row(d[2 * q], xp.x, xp.y, wp.x, wp.y);
          mma_row(d[2 * q + 1], xp.z, xp.w, wp.z, wp.w);
        }
      }
      total += d[0][0] + d[1][0] + d[2][0] + d[3][0];
    }
    if (copies) mega::bar_wait(bar, r & 1);
    __syncthreads();
  }
  const long long t1 = clock64();
  if (threadIdx.x == 0 && blockIdx.x == 0) *cycles = t1 - t0;
  if (total == 1.2345f) out[0] = total;
}

int main() {
  int sms = 0;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  char* src;
  float* out;
  long long* cycles;
  cudaMalloc(&src, int64_t(64) * kChunkBytes);
  cudaMalloc(&out, 4);
  cudaMalloc(&cycles, 8);
  const int smem = 128 + kK * 2 + 2 * kChunkBytes;
  cudaFuncSetAttribute(product, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  const int reps = 2000;
  const char* names[] = {"fma 2 rows/warp",   "mma 8 rows/warp", "mma 4 accumulators",
                         "mma conflict-free", "fma 4 rows/warp", "mma only"};
  for (int copies = 0; copies < 2; ++copies)
    for (int mode = 0; mode < 6; ++mode) {
      cudaEvent_t e0, e1;
      cudaEventCreate(&e0);
      cudaEventCreate(&e1);
      product<<<sms, kThreads, smem>>>(src, mode, copies, 10, out, cycles);
      cudaEventRecord(e0);
      product<<<sms, kThreads, smem>>>(src, mode, copies, reps, out, cycles);
      cudaEventRecord(e1);
      cudaEventSynchronize(e1);
      float ms = 0;
      cudaEventElapsedTime(&ms, e0, e1);
      long long c = 0;
      cudaMemcpy(&c, cycles, 8, cudaMemcpyDeviceToHost);
      const double us = ms * 1e3 / reps;
      printf("%-20s copies %d: %.0f cycles, %.3f us per 64 KiB chunk -> %.2f TB/s over %d SMs %s\n",
             names[mode], copies, double(c) / reps, us, kChunkBytes * double(sms) / us / 1e6, sms,
             cudaGetErrorString(cudaGetLastError()));
    }
  return 0;
}
