// Shared lowering of the tile IR to C-family source (C++ for the cpu, OpenCL C, CUDA C++).
// Internal to the compiler: targets pick a dialect and the number of threads per program.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "flagstone/compiler/ir.h"

namespace flagstone::compiler {

enum class Dialect { kCpu, kOpenCL, kCuda };

// CUDA kernels whose shared memory exceeds this take it dynamically (`extern __shared__`); the
// target opts the function in with cuFuncSetAttribute and passes the size at launch.
inline constexpr int64_t kCudaStaticSharedLimit = 48 * 1024;

// Lowers `fn` (verified) to source whose entry point is `fs_kernel`.
//
// Every program holds each tile spread over `threads` threads: thread t owns flat elements
// t, t + threads, ... (consecutive threads touch consecutive addresses, so loads coalesce).
// Ops that move elements between threads (broadcast, trans, reductions, dot) go through
// local/shared memory; `local_bytes` receives how much the kernel needs. On the cpu threads is
// 1 and every tile is a plain array the compiler vectorizes.
//
// Entry points:
//   cpu:    extern "C" void fs_kernel(void* const* args, int64_t begin, int64_t end,
//                                     int64_t g0, int64_t g1, int64_t g2)
//           runs programs [begin, end) of the grid; args[i] points at parameter i's value.
//   opencl: __kernel void fs_kernel(...): a pointer parameter is (__global T* buf, long
//           offset_in_elements); scalars by value.
//   cuda:   extern "C" __global__ void fs_kernel(...): pointers as device addresses.
// f16/bf16 are stored as 16-bit integers and computed in f32 with results rounded back.
// A tensor map (TMA descriptor) the launch makes for a CUDA kernel and passes after the IR's
// parameters, in order: a 2-d view of 16-bit elements at pointer parameter `pointer_param`,
// rows `row_stride_param` (an integer parameter) elements apart, read in boxes of `box_rows` x
// 64 into wgmma's 128-byte swizzle. A map that cannot be made is passed as zeros, and the
// kernel then copies with cp.async instead.
struct TensorMapRecipe {
  int pointer_param = 0;
  int row_stride_param = 0;
  int64_t box_rows = 0;
};

// `arch` (cuda: 90 for sm_90) unlocks architecture-specific lowerings: on sm_90 a GEMM K loop
// that fits becomes warpgroup MMA (wgmma), which needs the code compiled for sm_90a; with
// meta-parameter `tma` its tiles come by the tensor memory accelerator, through the tensor
// maps listed in `maps`.
std::string emit_source(const ir::Function& fn, Dialect dialect, int64_t threads,
                        int64_t* local_bytes, int arch = 0,
                        std::vector<TensorMapRecipe>* maps = nullptr);

// The storage C type a dialect uses for a dtype in memory (for argument marshalling).
size_t storage_size(DType dtype);

}  // namespace flagstone::compiler
