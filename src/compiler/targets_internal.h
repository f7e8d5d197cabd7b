// Factories of the built-in compiler targets, registered on first use of the target registry.
#pragma once

#include <memory>

#include "flagstone/compiler/target.h"

namespace flagstone::compiler {

std::unique_ptr<Target> create_cpu_target();
#ifdef FLAGSTONE_HAVE_OPENCL
std::unique_ptr<Target> create_opencl_target();
#endif
std::unique_ptr<Target> create_cuda_target();

}  // namespace flagstone::compiler
