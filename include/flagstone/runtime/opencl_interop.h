// Access to the OpenCL objects behind an "opencl" Device or Stream, for layers that build and
// launch their own OpenCL kernels (the compiler layer) on the runtime's context and queues.
#pragma once

// Only available when Flagstone was built with the opencl backend (FLAGSTONE_HAVE_OPENCL, set by
// CMake on flagstone_runtime when OpenCL was found); include it under `#ifdef
// FLAGSTONE_HAVE_OPENCL` and link OpenCL::OpenCL. The objects stay owned by the runtime: retain
// them (clRetainContext...) to keep one past the device's lifetime, never release them.
#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 300
#endif
#include <CL/cl.h>

#include "flagstone/runtime/device.h"

namespace flagstone::runtime {

// The device's context: every buffer (Buffer::handle() is a cl_mem) of the device lives in it.
// Throws kInvalidArgument naming the device when it is not an opencl device.
cl_context opencl_context(const Device& device);
cl_device_id opencl_device_id(const Device& device);
cl_platform_id opencl_platform_id(const Device& device);
// The in-order, profiling-enabled command queue of an opencl stream (its native_handle()).
cl_command_queue opencl_queue(const Stream& stream);

}  // namespace flagstone::runtime
