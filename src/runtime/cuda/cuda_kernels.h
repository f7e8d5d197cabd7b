// Launchers of the CUDA backend's own kernels. All device code lives in cuda_kernels.cu, so the
// rest of the backend is plain C++ compiled by the host compiler.
#pragma once

#include <cuda_runtime_api.h>

#include "flagstone/runtime/backend.h"

namespace flagstone::runtime::cuda {

// Enqueues `copy` (device pointers as handles, already validated: ndim in [0, kMaxDims], sizes
// >= 0, element_bytes > 0) on `stream`; the caller has made the device current. Dimensions are
// merged where both sides are contiguous, and elements are widened to 2..16-byte words when sizes,
// strides and addresses allow, so a contiguous copy becomes one cudaMemcpyAsync.
cudaError_t launch_strided_copy(const StridedCopy& copy, cudaStream_t stream);

}  // namespace flagstone::runtime::cuda
