// The backend contract: everything a chip vendor implements to bring a device to Flagstone.
// Implement Backend, DeviceImpl, StreamImpl and EventImpl, register the Backend, and the rest of
// the stack (tensors, ops fallbacks, comm staging, the CLI) works on the new device.
//
// Rules every backend follows (checked by tests/runtime/conformance_test.cc):
// - Device memory is opaque: a MemHandle plus a byte offset. cpu and cuda use the address as the
//   handle; opencl uses a cl_mem. Offsets may be any byte count, sizes any byte count >= 0.
// - Work on one stream runs in issue order. Work on different streams is unordered unless a
//   stream waits on an event recorded on the other.
// - copy_to_device may read `src` until it returns, not later: the caller may reuse `src` at once.
//   copy_to_host writes `dst` some time before the stream's next synchronize() returns.
// - Failures throw flagstone::Error naming the backend call, device and cause; allocation failure
//   is ErrorCategory::kOutOfMemory so the caching allocator can free its cache and retry.
// - Nothing here may abort the process or print; probing a backend that has no driver or no
//   device yields zero devices and a one-line reason from Backend::status().
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

namespace flagstone::runtime {

enum class DeviceType { kCpu, kGpu, kAccelerator };

struct DeviceCaps {
  bool fp64 = false;
  bool fp16 = false;
  bool bf16 = false;  // native bf16 arithmetic (storage works everywhere)
  bool int8_dot = false;
  bool pinned_host = false;     // allocate_pinned_host() returns page-locked memory
  bool host_accessible = false; // host_address() works: device memory is host memory
  bool async_copy = false;      // copies can overlap host work
};

struct DeviceInfo {
  std::string backend;  // "cpu", "cuda", "opencl", ...
  int index = 0;        // index within the backend
  std::string name;     // "NVIDIA H100 80GB HBM3", "pthread-haswell-AMD EPYC..."
  std::string vendor;
  std::string arch;            // "sm_90", "x86_64", OpenCL device version...
  std::string driver_version;  // driver or runtime version, as the backend reports it
  DeviceType type = DeviceType::kCpu;
  uint64_t memory_bytes = 0;
  uint64_t max_allocation_bytes = 0;
  int compute_units = 0;
  int clock_mhz = 0;
  DeviceCaps caps;
  std::map<std::string, std::string> extra;  // backend-specific facts shown by `flagstone info`
};

using MemHandle = void*;

class StreamImpl;

class EventImpl {
 public:
  virtual ~EventImpl() = default;
  // Marks the point after all work issued so far on `stream`.
  virtual void record(StreamImpl& stream) = 0;
  // Blocks the host until the recorded point is reached.
  virtual void synchronize() = 0;
  // True once the recorded point is reached (or if never recorded).
  virtual bool query() = 0;
  // Milliseconds from this event to `end`; both must be recorded and complete.
  virtual float elapsed_ms(EventImpl& end) = 0;
};

class StreamImpl {
 public:
  virtual ~StreamImpl() = default;
  virtual void synchronize() = 0;
  // Later work on this stream starts after `event`'s recorded point.
  virtual void wait(EventImpl& event) = 0;
  // The native queue (cudaStream_t, cl_command_queue) for code that launches its own kernels.
  virtual void* native_handle() { return nullptr; }
};

inline constexpr int kMaxDims = 8;

// An n-d strided copy between two buffers of one device; strides and offsets count elements.
struct StridedCopy {
  int ndim = 0;
  int64_t sizes[kMaxDims] = {};
  int64_t src_strides[kMaxDims] = {};
  int64_t dst_strides[kMaxDims] = {};
  size_t element_bytes = 0;
  MemHandle src = nullptr;
  int64_t src_offset = 0;
  MemHandle dst = nullptr;
  int64_t dst_offset = 0;
};

class DeviceImpl {
 public:
  virtual ~DeviceImpl() = default;
  virtual const DeviceInfo& info() const = 0;

  // Raw device allocation; throws kOutOfMemory when the device is full. bytes may be 0.
  virtual MemHandle allocate(size_t bytes) = 0;
  virtual void deallocate(MemHandle handle) noexcept = 0;
  // Page-locked host memory for fast copies; nullptr when the backend has none.
  virtual void* allocate_pinned_host(size_t /*bytes*/) { return nullptr; }
  virtual void free_pinned_host(void* /*ptr*/) noexcept {}
  // Host address of device memory when caps.host_accessible, else nullptr.
  virtual void* host_address(MemHandle /*handle*/, size_t /*offset*/) { return nullptr; }

  virtual StreamImpl& default_stream() = 0;
  virtual std::unique_ptr<StreamImpl> create_stream() = 0;
  virtual std::unique_ptr<EventImpl> create_event() = 0;
  // Waits for all work on all streams of this device.
  virtual void synchronize() = 0;

  virtual void copy_to_device(StreamImpl& stream, MemHandle dst, size_t dst_offset,
                              const void* src, size_t bytes) = 0;
  virtual void copy_to_host(StreamImpl& stream, void* dst, MemHandle src, size_t src_offset,
                            size_t bytes) = 0;
  virtual void copy_on_device(StreamImpl& stream, MemHandle dst, size_t dst_offset, MemHandle src,
                              size_t src_offset, size_t bytes) = 0;
  virtual void fill_bytes(StreamImpl& stream, MemHandle dst, size_t offset, size_t bytes,
                          uint8_t value) = 0;
  // Optional: a native strided copy. The default stages both buffers through the host, which is
  // correct on any backend but slow; override it with a kernel.
  virtual void copy_strided(StreamImpl& stream, const StridedCopy& copy);
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;
  // Empty when usable; otherwise one line saying why there are no devices (no driver, ...).
  virtual std::string status() const = 0;
  virtual int device_count() const = 0;
  // Devices are created once and live as long as the process.
  virtual std::shared_ptr<DeviceImpl> device(int index) = 0;
};

// Adds a backend to the registry (before or after the built-in ones are probed). Names are
// unique; a second backend of the same name throws kInvalidArgument.
void register_backend(std::unique_ptr<Backend> backend);

// Helper for backends: the shape-walking core of copy_strided on host memory.
void strided_copy_host(const StridedCopy& copy, const std::byte* src_base, std::byte* dst_base);

}  // namespace flagstone::runtime
