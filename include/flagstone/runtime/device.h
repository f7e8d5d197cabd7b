// The public run-time API: find devices by name ("cpu", "cuda:0", "opencl:1"), allocate memory
// through each device's caching allocator, and order copies on streams timed with events.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "flagstone/runtime/backend.h"

namespace flagstone::runtime {

class CachingAllocator;

// A handle to one device; cheap to copy. Devices live as long as the process.
class Device {
 public:
  Device();  // the cpu device
  // "cpu", "cpu:0", "cuda", "cuda:1", "opencl:0"; throws kNotFound naming the spec and listing
  // what exists.
  static Device get(std::string_view spec);

  const DeviceInfo& info() const;
  const std::string& backend() const { return info().backend; }
  int index() const { return info().index; }
  std::string spec() const;  // "cuda:0"
  bool is_cpu() const { return backend() == "cpu"; }
  bool operator==(const Device& other) const { return impl_ == other.impl_; }
  bool operator!=(const Device& other) const { return impl_ != other.impl_; }

  void synchronize() const;
  DeviceImpl& impl() const { return *impl_; }
  CachingAllocator& allocator() const;

 private:
  friend struct Registry;
  explicit Device(std::shared_ptr<DeviceImpl> impl);
  std::shared_ptr<DeviceImpl> impl_;
};

struct BackendStatus {
  std::string name;
  bool available = false;
  std::string reason;  // why not available
  int device_count = 0;
};

std::vector<BackendStatus> backend_statuses();
std::vector<Device> all_devices();
std::vector<Device> devices_of(std::string_view backend);

// Device memory from the device's caching allocator; returned to the cache when the last copy
// of the Buffer goes away. Size 0 buffers are valid.
class Buffer {
 public:
  Buffer() = default;
  static Buffer allocate(const Device& device, size_t bytes);

  bool defined() const { return block_ != nullptr; }
  size_t size() const;
  MemHandle handle() const;
  const Device& device() const;
  // Host address of byte `offset` when the device is host-accessible (cpu), else nullptr.
  void* host_address(size_t offset = 0) const;

 private:
  struct Block;
  std::shared_ptr<Block> block_;
};

class Event;

class Stream {
 public:
  Stream() = default;
  static Stream default_stream(const Device& device);
  static Stream create(const Device& device);

  const Device& device() const { return device_; }
  void synchronize() const;
  void wait(const Event& event) const;
  StreamImpl& impl() const { return *impl_; }
  bool defined() const { return impl_ != nullptr; }

 private:
  Device device_;
  std::shared_ptr<StreamImpl> impl_;
};

class Event {
 public:
  explicit Event(const Device& device);
  void record(const Stream& stream);
  void synchronize() const;
  bool query() const;
  // Milliseconds from this event to `end`, both recorded and complete.
  float elapsed_ms(const Event& end) const;
  EventImpl& impl() const { return *impl_; }

 private:
  Device device_;
  std::shared_ptr<EventImpl> impl_;
};

// Copies on `stream`, checked against buffer bounds (kInvalidArgument names both sides).
void copy_host_to_device(const Stream& stream, const Buffer& dst, size_t dst_offset,
                         const void* src, size_t bytes);
void copy_device_to_host(const Stream& stream, void* dst, const Buffer& src, size_t src_offset,
                         size_t bytes);
// Same device: a device copy; different devices: staged through host memory (synchronous).
void copy_device_to_device(const Stream& stream, const Buffer& dst, size_t dst_offset,
                           const Buffer& src, size_t src_offset, size_t bytes);
void fill_bytes(const Stream& stream, const Buffer& dst, size_t offset, size_t bytes,
                uint8_t value);

// Host memory for fast transfers: page-locked when the device's backend offers it, otherwise
// ordinary aligned memory (is_pinned() then says false).
class PinnedHostBuffer {
 public:
  PinnedHostBuffer() = default;
  PinnedHostBuffer(const Device& device, size_t bytes);
  ~PinnedHostBuffer();
  PinnedHostBuffer(PinnedHostBuffer&& other) noexcept;
  PinnedHostBuffer& operator=(PinnedHostBuffer&& other) noexcept;
  PinnedHostBuffer(const PinnedHostBuffer&) = delete;
  PinnedHostBuffer& operator=(const PinnedHostBuffer&) = delete;

  void* data() const { return data_; }
  size_t size() const { return size_; }
  bool is_pinned() const { return pinned_; }

 private:
  void release() noexcept;
  Device device_;
  void* data_ = nullptr;
  size_t size_ = 0;
  bool pinned_ = false;
};

}  // namespace flagstone::runtime
