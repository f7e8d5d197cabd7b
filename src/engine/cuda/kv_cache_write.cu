// The KV append kernel: one block per (token row, keys or values), its threads copying the row
// in the widest unit that every address and stride allows.
#include <cuda_runtime.h>

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

}  // namespace

const char* launch_kv_cache_write(const KvWriteArgs& a, int device, void* stream_handle) {
  if (a.batch <= 0 || a.tokens <= 0 || a.row_bytes <= 0) return "";
  int current = -1;
  if (cudaGetDevice(&current) != cudaSuccess || current != device) {
    cudaError_t status = cudaSetDevice(device);
    if (status != cudaSuccess) return cudaGetErrorString(status);
  }
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
