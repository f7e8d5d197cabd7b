// The opencl backend: discovers every device of every ICD platform (opencl:0, opencl:1, ... in
// platform then device order) and describes each one for `flagstone info`.
#include <CL/cl_ext.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "backends.h"
#include "flagstone/base/error.h"
#include "opencl/opencl_device.h"

namespace flagstone::runtime {
namespace opencl {
namespace {

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\0' || text.back() == ' ' || text.back() == '\n')) {
    text.pop_back();
  }
  size_t first = text.find_first_not_of(' ');
  return first == std::string::npos ? std::string() : text.substr(first);
}

std::string device_string(cl_device_id device, cl_device_info param, std::string_view where) {
  size_t size = 0;
  FS_CL(where, clGetDeviceInfo, device, param, 0, nullptr, &size);
  std::string text(size, '\0');
  if (size > 0) FS_CL(where, clGetDeviceInfo, device, param, size, text.data(), nullptr);
  return trimmed(std::move(text));
}

std::string platform_string(cl_platform_id platform, cl_platform_info param,
                            std::string_view where) {
  size_t size = 0;
  FS_CL(where, clGetPlatformInfo, platform, param, 0, nullptr, &size);
  std::string text(size, '\0');
  if (size > 0) FS_CL(where, clGetPlatformInfo, platform, param, size, text.data(), nullptr);
  return trimmed(std::move(text));
}

template <typename T>
T device_value(cl_device_id device, cl_device_info param, std::string_view where) {
  T value{};
  FS_CL(where, clGetDeviceInfo, device, param, sizeof(T), &value, nullptr);
  return value;
}

bool has_extension(const std::string& extensions, std::string_view name) {
  size_t pos = 0;
  while ((pos = extensions.find(name, pos)) != std::string::npos) {
    size_t end = pos + name.size();
    bool starts = pos == 0 || extensions[pos - 1] == ' ';
    bool ends = end == extensions.size() || extensions[end] == ' ';
    if (starts && ends) return true;
    pos = end;
  }
  return false;
}

size_t count_words(const std::string& text) {
  size_t count = 0;
  bool in_word = false;
  for (char c : text) {
    bool space = c == ' ';
    if (!space && !in_word) ++count;
    in_word = !space;
  }
  return count;
}

// "OpenCL 3.0 CUDA" -> 3; anything unparsable counts as 1.x, the oldest we talk to.
int major_version(const std::string& version) {
  const std::string prefix = "OpenCL ";
  if (version.rfind(prefix, 0) != 0 || version.size() <= prefix.size()) return 1;
  char digit = version[prefix.size()];
  return digit >= '1' && digit <= '9' ? digit - '0' : 1;
}

}  // namespace

std::string device_label(int index, cl_device_id device) {
  std::string where = "opencl:" + std::to_string(index);
  return where + " (" + device_string(device, CL_DEVICE_NAME, where) + ")";
}

DeviceInfo query_device_info(int index, cl_platform_id platform, cl_device_id device) {
  const std::string where = device_label(index, device);
  DeviceInfo info;
  info.backend = "opencl";
  info.index = index;
  info.name = device_string(device, CL_DEVICE_NAME, where);
  info.vendor = device_string(device, CL_DEVICE_VENDOR, where);
  info.arch = device_string(device, CL_DEVICE_VERSION, where);
  info.driver_version = device_string(device, CL_DRIVER_VERSION, where);
  auto type = device_value<cl_device_type>(device, CL_DEVICE_TYPE, where);
  info.type = (type & CL_DEVICE_TYPE_GPU)   ? DeviceType::kGpu
              : (type & CL_DEVICE_TYPE_CPU) ? DeviceType::kCpu
                                            : DeviceType::kAccelerator;
  info.memory_bytes = device_value<cl_ulong>(device, CL_DEVICE_GLOBAL_MEM_SIZE, where);
  info.max_allocation_bytes = device_value<cl_ulong>(device, CL_DEVICE_MAX_MEM_ALLOC_SIZE, where);
  info.compute_units =
      static_cast<int>(device_value<cl_uint>(device, CL_DEVICE_MAX_COMPUTE_UNITS, where));
  info.clock_mhz =
      static_cast<int>(device_value<cl_uint>(device, CL_DEVICE_MAX_CLOCK_FREQUENCY, where));

  const std::string extensions = device_string(device, CL_DEVICE_EXTENSIONS, where);
  auto double_config = device_value<cl_device_fp_config>(device, CL_DEVICE_DOUBLE_FP_CONFIG, where);
  info.caps.fp64 = has_extension(extensions, "cl_khr_fp64") || double_config != 0;
  info.caps.fp16 = has_extension(extensions, "cl_khr_fp16");
  info.caps.int8_dot = has_extension(extensions, "cl_khr_integer_dot_product");
  // Drivers of discrete devices back mapped CL_MEM_ALLOC_HOST_PTR buffers with page-locked
  // memory; on a CPU device that memory is no faster than any other.
  info.caps.pinned_host = info.type != DeviceType::kCpu;
  info.caps.host_accessible = false;
  info.caps.async_copy = info.type != DeviceType::kCpu;

  info.extra["platform"] = platform_string(platform, CL_PLATFORM_NAME, where);
  info.extra["platform_version"] = platform_string(platform, CL_PLATFORM_VERSION, where);
  info.extra["opencl_c_version"] = device_string(device, CL_DEVICE_OPENCL_C_VERSION, where);
  info.extra["extensions"] = std::to_string(count_words(extensions));
  info.extra["local_memory_bytes"] =
      std::to_string(device_value<cl_ulong>(device, CL_DEVICE_LOCAL_MEM_SIZE, where));
  info.extra["max_work_group_size"] =
      std::to_string(device_value<size_t>(device, CL_DEVICE_MAX_WORK_GROUP_SIZE, where));
  info.extra["max_constant_buffer_bytes"] =
      std::to_string(device_value<cl_ulong>(device, CL_DEVICE_MAX_CONSTANT_BUFFER_SIZE, where));
  info.extra["address_bits"] =
      std::to_string(device_value<cl_uint>(device, CL_DEVICE_ADDRESS_BITS, where));
  if (has_extension(extensions, "cl_nv_device_attribute_query")) {
    auto major = device_value<cl_uint>(device, CL_DEVICE_COMPUTE_CAPABILITY_MAJOR_NV, where);
    auto minor = device_value<cl_uint>(device, CL_DEVICE_COMPUTE_CAPABILITY_MINOR_NV, where);
    info.extra["nv_compute_capability"] = std::to_string(major) + "." + std::to_string(minor);
  }
  return info;
}

namespace {

class OpenClBackend final : public Backend {
 public:
  OpenClBackend() {
    try {
      probe();
    } catch (const Error& error) {
      // A broken ICD must not take the other backends down: report it and offer no devices.
      devices_.clear();
      status_ = "OpenCL probe failed: " + error.message();
    }
  }

  std::string_view name() const override { return "opencl"; }
  std::string status() const override { return status_; }
  int device_count() const override { return static_cast<int>(devices_.size()); }
  std::shared_ptr<DeviceImpl> device(int index) override {
    FS_CHECK(index >= 0 && index < device_count(), kNotFound, "opencl:", index,
             " does not exist: this machine has ", device_count(), " OpenCL device(s)");
    return devices_[static_cast<size_t>(index)];
  }

 private:
  void probe() {
    cl_uint platform_count = 0;
    cl_int code = clGetPlatformIDs(0, nullptr, &platform_count);
    if (code != CL_SUCCESS || platform_count == 0) {
      status_ = "no OpenCL platform (clGetPlatformIDs: " + code_name(code) +
                "); install an ICD such as pocl-opencl-icd or the GPU vendor's driver";
      return;
    }
    std::vector<cl_platform_id> platforms(platform_count);
    FS_CL("OpenCL platform list", clGetPlatformIDs, platform_count, platforms.data(), nullptr);
    std::string first_failure;
    for (size_t p = 0; p < platforms.size(); ++p) {
      const std::string where = "OpenCL platform " + std::to_string(p);
      cl_uint count = 0;
      code = clGetDeviceIDs(platforms[p], CL_DEVICE_TYPE_ALL, 0, nullptr, &count);
      if (code == CL_DEVICE_NOT_FOUND || count == 0) continue;
      FS_CL_CHECK_CODE(code, "clGetDeviceIDs", where, kOrdinary);
      std::vector<cl_device_id> ids(count);
      FS_CL(where, clGetDeviceIDs, platforms[p], CL_DEVICE_TYPE_ALL, count, ids.data(), nullptr);
      bool modern = major_version(platform_string(platforms[p], CL_PLATFORM_VERSION, where)) >= 2;
      for (cl_device_id id : ids) {
        try {
          int index = static_cast<int>(devices_.size());
          devices_.push_back(std::make_shared<OpenClDevice>(index, platforms[p], id, modern));
        } catch (const Error& error) {
          // One unusable device (say, a GPU whose driver is wedged) must not hide the others.
          if (first_failure.empty()) first_failure = error.message();
        }
      }
    }
    if (devices_.empty()) {
      status_ = first_failure.empty()
                    ? std::to_string(platform_count) + " OpenCL platform(s) but no device"
                    : "no usable OpenCL device: " + first_failure;
    }
  }

  std::vector<std::shared_ptr<DeviceImpl>> devices_;
  std::string status_;
};

}  // namespace
}  // namespace opencl

std::unique_ptr<Backend> create_opencl_backend() {
  return std::make_unique<opencl::OpenClBackend>();
}

}  // namespace flagstone::runtime
