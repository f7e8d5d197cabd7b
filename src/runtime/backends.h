// Factories of the built-in backends, called once by the registry when it first probes.
// Each lives in src/runtime/<backend>/ and is compiled only when this build found its toolkit.
#pragma once

#include <memory>

#include "flagstone/runtime/backend.h"

namespace flagstone::runtime {

std::unique_ptr<Backend> create_cpu_backend();
#ifdef FLAGSTONE_HAVE_CUDA
std::unique_ptr<Backend> create_cuda_backend();
#endif
#ifdef FLAGSTONE_HAVE_OPENCL
std::unique_ptr<Backend> create_opencl_backend();
#endif

}  // namespace flagstone::runtime
