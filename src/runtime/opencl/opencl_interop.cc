// The public interop functions of include/flagstone/runtime/opencl_interop.h.
// They only unwrap the backend's objects; ownership stays with the device and stream.
#include "flagstone/runtime/opencl_interop.h"

#include "flagstone/base/error.h"
#include "opencl/opencl_device.h"

namespace flagstone::runtime {
namespace {

opencl::DeviceState& state_of(const Device& device, const char* function) {
  auto* cl_device = dynamic_cast<opencl::OpenClDevice*>(&device.impl());
  FS_CHECK(cl_device != nullptr, kInvalidArgument, function, ": device ", device.spec(),
           " is not an opencl device");
  return cl_device->state();
}

}  // namespace

cl_context opencl_context(const Device& device) {
  return state_of(device, "opencl_context").context;
}

cl_device_id opencl_device_id(const Device& device) {
  return state_of(device, "opencl_device_id").device;
}

cl_platform_id opencl_platform_id(const Device& device) {
  return state_of(device, "opencl_platform_id").platform;
}

cl_command_queue opencl_queue(const Stream& stream) {
  FS_CHECK(stream.defined(), kInvalidArgument, "opencl_queue: the stream is undefined");
  auto* cl_stream = dynamic_cast<const opencl::OpenClStream*>(&stream.impl());
  FS_CHECK(cl_stream != nullptr, kInvalidArgument, "opencl_queue: stream of device ",
           stream.device().spec(), " is not an opencl stream");
  return cl_stream->queue();
}

}  // namespace flagstone::runtime
