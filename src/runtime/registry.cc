// The backend registry: probes the built-in backends once, accepts vendor backends, and maps
// device specs ("cuda:1") to devices.
#include <mutex>
#include <sstream>
#include <vector>

#include "backends.h"
#include "flagstone/base/error.h"
#include "flagstone/runtime/device.h"

namespace flagstone::runtime {

struct Registry {
  std::mutex mutex;
  std::vector<std::unique_ptr<Backend>> backends;
  bool probed = false;

  static Registry& get() {
    // Never destroyed: devices must stay valid while static destructors of other objects that
    // hold Buffers run at exit.
    static Registry* registry = new Registry();
    return *registry;
  }

  void probe_locked() {
    if (probed) return;
    probed = true;
    backends.insert(backends.begin(), create_cpu_backend());
#ifdef FLAGSTONE_HAVE_CUDA
    backends.push_back(create_cuda_backend());
#endif
#ifdef FLAGSTONE_HAVE_OPENCL
    backends.push_back(create_opencl_backend());
#endif
  }

  Backend* find_locked(std::string_view name) {
    probe_locked();
    for (auto& backend : backends) {
      if (backend->name() == name) return backend.get();
    }
    return nullptr;
  }

  static Device make_device(std::shared_ptr<DeviceImpl> impl) {
    return Device(std::move(impl));
  }
};

void register_backend(std::unique_ptr<Backend> backend) {
  FS_CHECK(backend != nullptr, kInvalidArgument, "register_backend: null backend");
  Registry& registry = Registry::get();
  std::lock_guard lock(registry.mutex);
  FS_CHECK(registry.find_locked(backend->name()) == nullptr, kInvalidArgument,
           "register_backend: a backend named '", backend->name(), "' already exists");
  registry.backends.push_back(std::move(backend));
}

std::vector<BackendStatus> backend_statuses() {
  Registry& registry = Registry::get();
  std::lock_guard lock(registry.mutex);
  registry.probe_locked();
  std::vector<BackendStatus> out;
  for (auto& backend : registry.backends) {
    BackendStatus status;
    status.name = std::string(backend->name());
    status.device_count = backend->device_count();
    status.reason = backend->status();
    status.available = status.reason.empty() && status.device_count > 0;
    if (status.reason.empty() && status.device_count == 0) status.reason = "no devices found";
    out.push_back(std::move(status));
  }
  return out;
}

std::vector<Device> all_devices() {
  Registry& registry = Registry::get();
  std::lock_guard lock(registry.mutex);
  registry.probe_locked();
  std::vector<Device> out;
  for (auto& backend : registry.backends) {
    for (int i = 0; i < backend->device_count(); ++i) {
      out.push_back(Registry::make_device(backend->device(i)));
    }
  }
  return out;
}

std::vector<Device> devices_of(std::string_view name) {
  Registry& registry = Registry::get();
  std::lock_guard lock(registry.mutex);
  std::vector<Device> out;
  if (Backend* backend = registry.find_locked(name)) {
    for (int i = 0; i < backend->device_count(); ++i) {
      out.push_back(Registry::make_device(backend->device(i)));
    }
  }
  return out;
}

Device Device::get(std::string_view spec) {
  std::string_view name = spec;
  int index = 0;
  if (auto colon = spec.find(':'); colon != std::string_view::npos) {
    name = spec.substr(0, colon);
    std::string_view digits = spec.substr(colon + 1);
    bool valid = !digits.empty() && digits.size() < 6;
    index = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') valid = false;
      index = index * 10 + (c - '0');
    }
    FS_CHECK(valid, kInvalidArgument, "bad device spec '", spec,
             "': expected BACKEND or BACKEND:INDEX, e.g. cpu, cuda:0, opencl:1");
  }
  Registry& registry = Registry::get();
  std::lock_guard lock(registry.mutex);
  Backend* backend = registry.find_locked(name);
  if (backend == nullptr) {
    std::ostringstream known;
    for (auto& b : registry.backends) known << " " << b->name();
    throw_error(ErrorCategory::kNotFound, "device '", spec, "': no backend named '", name,
                "' in this build (backends:", known.str(), ")");
  }
  int count = backend->device_count();
  if (index >= count) {
    std::string reason = backend->status();
    throw_error(ErrorCategory::kNotFound, "device '", spec, "' does not exist: backend '", name,
                "' has ", count, " device(s)", reason.empty() ? "" : " (", reason,
                reason.empty() ? "" : ")");
  }
  return Registry::make_device(backend->device(index));
}

Device::Device() {
  // The default device is asked for often (every default-constructed Stream, Tensor...).
  static const std::shared_ptr<DeviceImpl> cpu = Device::get("cpu").impl_;
  impl_ = cpu;
}

}  // namespace flagstone::runtime
