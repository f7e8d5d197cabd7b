// Programmatic dependent launch (PDL, compute capability 9.0 and up): a kernel launched with it
// may start while the previous kernel of its stream finishes, which hides most of the launch gap
// between the short kernels of a decode step. Included only by the provider's .cu files.
#pragma once

#include <cuda_runtime.h>

#include <cstdlib>
#include <cstring>

namespace flagstone::ops::cuda {

// In a kernel launched with PDL: waits until the previous kernel of the stream has finished and
// its writes are visible. Such a kernel calls it before it touches memory that kernel may write
// (or read, for what it writes itself). Without PDL it returns at once.
__device__ __forceinline__ void wait_for_previous_kernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Lets the next kernel of the stream, when launched with PDL, start its blocks before this one
// ends (they still wait for it in wait_for_previous_kernel). Calling it even before this kernel's
// own wait is safe: the next kernel's wait returns only once this one has finished, which is
// after everything this one waited for, so only loads of data no kernel in flight writes (the
// weights of a decode step) may come before a wait.
__device__ __forceinline__ void allow_next_kernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Whether launches on the current device use PDL: compute capability 9.0 and up, unless
// FLAGSTONE_CUDA_PDL=0 (to measure what it saves).
inline bool use_pdl() {
  static const bool allowed = [] {
    const char* env = std::getenv("FLAGSTONE_CUDA_PDL");
    return !(env && std::strcmp(env, "0") == 0);
  }();
  if (!allowed) return false;
  static int major_of[64] = {};  // 0: not asked yet (a race only repeats the same query)
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess || device < 0 || device >= 64) return false;
  if (major_of[device] == 0 &&
      cudaDeviceGetAttribute(&major_of[device], cudaDevAttrComputeCapabilityMajor, device) !=
          cudaSuccess)
    return false;
  return major_of[device] >= 9;
}

// Launches `kernel` with PDL where use_pdl() allows it, plainly otherwise. The kernel must call
// wait_for_previous_kernel() before its first access to memory the previous kernel may touch.
template <typename... Params, typename... Args>
cudaError_t launch_with_pdl(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes,
                            cudaStream_t stream, Args... args) {
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared_bytes;
  config.stream = stream;
  cudaLaunchAttribute attribute[1];
  attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute[0].val.programmaticStreamSerializationAllowed = 1;
  if (use_pdl()) config.attrs = attribute, config.numAttrs = 1;
  return cudaLaunchKernelEx(&config, kernel, static_cast<Params>(args)...);
}

// The configuration of a launch whose blocks form clusters of `cluster_x` blocks along x
// (sm_90), with PDL when `pdl` is set; `attributes` must outlive the launch.
inline cudaLaunchConfig_t cluster_config(dim3 grid, dim3 block, size_t shared_bytes,
                                         cudaStream_t stream, unsigned cluster_x, bool pdl,
                                         cudaLaunchAttribute (&attributes)[2]) {
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared_bytes;
  config.stream = stream;
  attributes[0].id = cudaLaunchAttributeClusterDimension;
  attributes[0].val.clusterDim.x = cluster_x;
  attributes[0].val.clusterDim.y = 1;
  attributes[0].val.clusterDim.z = 1;
  attributes[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attributes[1].val.programmaticStreamSerializationAllowed = 1;
  config.attrs = attributes;
  config.numAttrs = pdl ? 2 : 1;
  return config;
}

// Lets `kernel` run in clusters of `cluster_x` blocks: more than 8 is a non-portable size on
// sm_90, which the kernel must opt in to.
template <typename Kernel>
cudaError_t allow_cluster_size(Kernel kernel, unsigned cluster_x) {
  if (cluster_x <= 8) return cudaSuccess;
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1);
}

// How many clusters of `cluster_x` blocks of `kernel` (with `shared_bytes` of dynamic shared
// memory, which the kernel must already allow) the current device holds at once; 0 when none or
// when the query fails.
template <typename Kernel>
int max_active_clusters(Kernel kernel, dim3 grid, dim3 block, size_t shared_bytes,
                        unsigned cluster_x) {
  if (allow_cluster_size(kernel, cluster_x) != cudaSuccess) return 0;
  cudaLaunchAttribute attributes[2];
  const cudaLaunchConfig_t config =
      cluster_config(grid, block, shared_bytes, nullptr, cluster_x, false, attributes);
  int clusters = 0;
  if (cudaOccupancyMaxActiveClusters(&clusters, kernel, &config) != cudaSuccess) return 0;
  return clusters;
}

// Launches `kernel` in clusters of `cluster_x` blocks along x (more than 8 allowed: a
// non-portable size on sm_90), with PDL where use_pdl() allows it.
template <typename... Params, typename... Args>
cudaError_t launch_clusters_with_pdl(void (*kernel)(Params...), dim3 grid, dim3 block,
                                     size_t shared_bytes, cudaStream_t stream, unsigned cluster_x,
                                     Args... args) {
  if (const cudaError_t e = allow_cluster_size(kernel, cluster_x); e != cudaSuccess) return e;
  cudaLaunchAttribute attributes[2];
  const cudaLaunchConfig_t config =
      cluster_config(grid, block, shared_bytes, stream, cluster_x, use_pdl(), attributes);
  return cudaLaunchKernelEx(&config, kernel, static_cast<Params>(args)...);
}

}  // namespace flagstone::ops::cuda
