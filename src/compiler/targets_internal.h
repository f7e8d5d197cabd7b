// Factories of the built-in compiler targets, registered on first use of the target registry.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "flagstone/compiler/target.h"

namespace flagstone::compiler {

std::unique_ptr<Target> create_cpu_target();
#ifdef FLAGSTONE_HAVE_OPENCL
std::unique_ptr<Target> create_opencl_target();
#endif
std::unique_ptr<Target> create_cuda_target();

// A launch argument as a C kernel entry receives it by address: the cpu entry's `args` and
// cuLaunchKernel's kernelParams are both arrays of pointers to such slots.
union ArgSlot {
  void* ptr;  // buffer handle + byte offset (a host or device address)
  int32_t i32;
  int64_t i64;
  float f32;
  double f64;
};
// Fills `slots` from `args` and `addresses` with a pointer to each slot.
void marshal_args(const std::vector<LaunchArg>& args, std::vector<ArgSlot>* slots,
                  std::vector<void*>* addresses);

}  // namespace flagstone::compiler
