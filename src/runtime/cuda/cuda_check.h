// Error checking for the CUDA backend: every CUDA runtime call goes through FS_CUDA_CHECK, which
// turns a failure into a flagstone::Error carrying the call, the CUDA error, the device and
// file:line.
#pragma once

#include <cuda_runtime_api.h>

#include <string_view>

namespace flagstone::runtime::cuda {

// Throws flagstone::Error for `status` (kOutOfMemory for cudaErrorMemoryAllocation, else
// kBackend). `device` < 0 means the call concerns no particular device; `context` adds detail
// such as the byte count of a failed allocation.
[[noreturn]] void throw_cuda_error(cudaError_t status, const char* call, int device,
                                   const char* file, int line, std::string_view context = {});

inline void check_cuda(cudaError_t status, const char* call, int device, const char* file,
                       int line) {
  if (status != cudaSuccess) throw_cuda_error(status, call, device, file, line);
}

// Makes `device` current on the calling thread unless it already is.
void use_device(int device);
// The same for destructors and release paths: false instead of throwing, and false once the
// process has begun to exit.
bool use_device_quietly(int device) noexcept;
// True once the process has begun to exit: release paths then leave everything to the OS,
// since the CUDA runtime may already be torn down.
bool exiting() noexcept;
// For noexcept release paths: drops a failure and clears the runtime's last-error slot.
void ignore(cudaError_t status) noexcept;

}  // namespace flagstone::runtime::cuda

// FS_CUDA_CHECK(device_index, cudaCall(...)): the call text itself goes into the message.
#define FS_CUDA_CHECK(device, call) \
  ::flagstone::runtime::cuda::check_cuda((call), #call, (device), __FILE__, __LINE__)
