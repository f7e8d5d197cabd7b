// The KV append kernel: one block per (token row, keys or values), its threads copying the row
// in the widest unit that every address and stride allows.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "cuda/pdl.cuh"
#include "kv_cache_write.h"

namespace flagstone::engine::detail {
namespace {

template <typename Unit>
__global__ void kv_cache_write(KvWriteArgs a) {
  const int64_t row = blockIdx.x, b = row / a.tokens, r = row % a.tokens;
  const int which = static_cast<int>(blockIdx.y);
  const auto* src = reinterpret_cast<const Unit*>(static_cast<const char*>(a.src[which]) +
                                                  b * a.src_batch[which] + r * a.src_token[which]);
  auto* dst = reinterpret_cast<Unit*>(static_cast<char*>(a.dst[which]) + b * a.dst_batch +
                                      (a.start[b] + r) * a.dst_token);
  const int64_t units = a.row_bytes / static_cast<int64_t>(sizeof(Unit));
  for (int64_t i = threadIdx.x; i < units; i += blockDim.x) dst[i] = src[i];
}

template <typename Unit>
cudaError_t launch(const KvWriteArgs& a, cudaStream_t stream) {
  const int64_t units = a.row_bytes / static_cast<int64_t>(sizeof(Unit));
  const int threads = static_cast<int>(units < 256 ? (units + 31) / 32 * 32 : 256);
  dim3 grid(static_cast<unsigned>(a.batch * a.tokens), 2);
  kv_cache_write<Unit><<<grid, threads, 0, stream>>>(a);
  return cudaGetLastError();
}

__device__ float to_float(float v) {
  return v;
}
__device__ float to_float(__half v) {
  return __half2float(v);
}
__device__ float to_float(__nv_bfloat16 v) {
  return __bfloat162float(v);
}
template <typename T>
__device__ T from_float(float v);
template <>
__device__ float from_float<float>(float v) {
  return v;
}
template <>
__device__ __half from_float<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// One block per (sequence, head); threads walk the head's rotation pairs. The arithmetic is the
// rotary_embedding op's (float, x1 c - x2 s and x2 c + x1 s, rounded once), so both paths agree.
// Programmatic dependent launch (cuda/pdl.cuh): the rotary kernel may start while the q/k/v
// projection finishes and waits for it here; the attention kernel after it may start in turn.
template <typename T>
__global__ void rope_kv_write(RopeKvArgs a) {
  ops::cuda::wait_for_previous_kernel();
  ops::cuda::allow_next_kernel();
  const int64_t b = blockIdx.x, h = blockIdx.y;
  const T* x = static_cast<const T*>(a.heads) + b * a.heads_batch + h * a.head_dim;
  const int64_t p = a.start[b];
  const int64_t rows = a.kv_heads * a.head_dim;
  const int64_t slot = (b * a.capacity + p) * rows;
  const int64_t pairs = a.head_dim / 2;
  if (h >= a.q_heads + a.kv_heads) {  // a v head: copied into the value cache
    T* out = static_cast<T*>(a.v_cache) + slot + (h - a.q_heads - a.kv_heads) * a.head_dim;
    for (int64_t i = threadIdx.x; i < a.head_dim; i += blockDim.x) out[i] = x[i];
    return;
  }
  T* out = h < a.q_heads ? static_cast<T*>(a.q_out) + (b * a.q_heads + h) * a.head_dim
                         : static_cast<T*>(a.k_cache) + slot + (h - a.q_heads) * a.head_dim;
  const bool bad = p < 0 || p >= a.max_positions;
  const T* cos = static_cast<const T*>(a.cos) + p * pairs;
  const T* sin = static_cast<const T*>(a.sin) + p * pairs;
  for (int64_t i = threadIdx.x; i < pairs; i += blockDim.x) {
    const int64_t lo = a.neox ? i : 2 * i, hi = a.neox ? i + pairs : 2 * i + 1;
    const float x1 = to_float(x[lo]), x2 = to_float(x[hi]);
    const float c = bad ? NAN : to_float(cos[i]), s = bad ? NAN : to_float(sin[i]);
    out[lo] = from_float<T>(x1 * c - x2 * s);
    out[hi] = from_float<T>(x2 * c + x1 * s);
  }
}

template <typename T>
cudaError_t launch_rope(const RopeKvArgs& a, cudaStream_t stream) {
  const int64_t pairs = a.head_dim / 2;
  const dim3 grid(static_cast<unsigned>(a.batch),
                  static_cast<unsigned>(a.q_heads + 2 * a.kv_heads));
  const dim3 block(static_cast<unsigned>(pairs < 128 ? (pairs + 31) / 32 * 32 : 128));
  return ops::cuda::launch_with_pdl(rope_kv_write<T>, grid, block, 0, stream, a);
}

__global__ void advance(int64_t* values, int64_t count) {
  const int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (i < count) values[i] += 1;
}

__global__ void spin(int64_t nanoseconds) {
  uint64_t start, now;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
  do {
    __nanosleep(1000);
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
  } while (static_cast<int64_t>(now - start) < nanoseconds);
}

}  // namespace

const char* use_cuda_device(int device) {
  int current = -1;
  if (cudaGetDevice(&current) != cudaSuccess || current != device) {
    cudaError_t status = cudaSetDevice(device);
    if (status != cudaSuccess) return cudaGetErrorString(status);
  }
  return "";
}

const char* launch_rope_kv_write(const RopeKvArgs& a, int element_bytes, bool bf16, int device,
                                 void* stream_handle) {
  if (a.batch <= 0) return "";
  if (a.batch > 65535 || a.q_heads + 2 * a.kv_heads > 65535 || a.head_dim % 2 != 0)
    return "unsupported shape for the fused rotary + KV append";
  if (const char* error = use_cuda_device(device); *error) return error;
  auto stream = static_cast<cudaStream_t>(stream_handle);
  cudaError_t status = element_bytes == 4 ? launch_rope<float>(a, stream)
                       : bf16             ? launch_rope<__nv_bfloat16>(a, stream)
                                          : launch_rope<__half>(a, stream);
  return status == cudaSuccess ? "" : cudaGetErrorString(status);
}

const char* launch_advance_step(int64_t* values, int64_t count, int device, void* stream) {
  if (count <= 0) return "";
  if (const char* error = use_cuda_device(device); *error) return error;
  if (count >= (int64_t{1} << 31)) return "too many values to advance";
  const int threads = 128;
  advance<<<static_cast<unsigned>((count + threads - 1) / threads), threads, 0,
            static_cast<cudaStream_t>(stream)>>>(values, count);
  cudaError_t status = cudaGetLastError();
  return status == cudaSuccess ? "" : cudaGetErrorString(status);
}

const char* launch_device_delay(int device, void* stream, int64_t microseconds) {
  if (const char* error = use_cuda_device(device); *error) return error;
  spin<<<1, 1, 0, static_cast<cudaStream_t>(stream)>>>(microseconds * 1000);
  cudaError_t status = cudaGetLastError();
  return status == cudaSuccess ? "" : cudaGetErrorString(status);
}

const char* launch_kv_cache_write(const KvWriteArgs& a, int device, void* stream_handle) {
  if (a.batch <= 0 || a.tokens <= 0 || a.row_bytes <= 0) return "";
  if (const char* error = use_cuda_device(device); *error) return error;
  if (a.batch * a.tokens >= (int64_t{1} << 31)) return "too many rows for one launch";
  // The widest unit dividing every base address, stride and the row length.
  uint64_t bits = static_cast<uint64_t>(a.row_bytes) | static_cast<uint64_t>(a.dst_batch) |
                  static_cast<uint64_t>(a.dst_token);
  for (int i = 0; i < 2; ++i) {
    bits |= reinterpret_cast<uintptr_t>(a.src[i]) | reinterpret_cast<uintptr_t>(a.dst[i]) |
            static_cast<uint64_t>(a.src_batch[i]) | static_cast<uint64_t>(a.src_token[i]);
  }
  auto stream = static_cast<cudaStream_t>(stream_handle);
  cudaError_t status;
  if (bits % 16 == 0) {
    status = launch<uint4>(a, stream);
  } else if (bits % 4 == 0) {
    status = launch<unsigned int>(a, stream);
  } else if (bits % 2 == 0) {
    status = launch<unsigned short>(a, stream);
  } else {
    status = launch<unsigned char>(a, stream);
  }
  return status == cudaSuccess ? "" : cudaGetErrorString(status);
}

}  // namespace flagstone::engine::detail
