// Device handles, Buffers from the caching allocator, Streams, Events, checked copies and
// pinned host buffers: the thin public layer over a backend's DeviceImpl.
#include "flagstone/runtime/device.h"

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "flagstone/base/error.h"
#include "flagstone/runtime/allocator.h"

namespace flagstone::runtime {

Device::Device(std::shared_ptr<DeviceImpl> impl) : impl_(std::move(impl)) {}

const DeviceInfo& Device::info() const {
  return impl_->info();
}

std::string Device::spec() const {
  return info().backend + ":" + std::to_string(info().index);
}

void Device::synchronize() const {
  impl_->synchronize();
}

CachingAllocator& Device::allocator() const {
  // One allocator per device for the life of the process (never destroyed, like devices).
  static auto* mutex = new std::mutex();
  static auto* allocators =
      new std::unordered_map<DeviceImpl*, std::unique_ptr<CachingAllocator>>();
  std::lock_guard lock(*mutex);
  auto& slot = (*allocators)[impl_.get()];
  if (!slot) slot = std::make_unique<CachingAllocator>(impl_);
  return *slot;
}

// ---- Buffer ----

struct Buffer::Block {
  Device device;
  MemHandle handle = nullptr;
  size_t size = 0;
  size_t rounded = 0;
  ~Block() { device.allocator().release(handle, rounded); }
};

Buffer Buffer::allocate(const Device& device, size_t bytes) {
  auto block = std::make_shared<Block>();
  block->device = device;
  block->size = bytes;
  block->handle = device.allocator().allocate(bytes, &block->rounded);
  Buffer buffer;
  buffer.block_ = std::move(block);
  return buffer;
}

size_t Buffer::size() const {
  return block_ ? block_->size : 0;
}

MemHandle Buffer::handle() const {
  FS_CHECK(block_, kInvalidArgument, "use of an undefined Buffer");
  return block_->handle;
}

const Device& Buffer::device() const {
  FS_CHECK(block_, kInvalidArgument, "use of an undefined Buffer");
  return block_->device;
}

void* Buffer::host_address(size_t offset) const {
  FS_CHECK(block_, kInvalidArgument, "use of an undefined Buffer");
  return block_->device.impl().host_address(block_->handle, offset);
}

// ---- Stream and Event ----

Stream Stream::default_stream(const Device& device) {
  Stream stream;
  stream.device_ = device;
  // Aliasing constructor: a non-owning handle to the device-owned default stream that keeps the
  // device alive.
  stream.impl_ =
      std::shared_ptr<StreamImpl>(std::shared_ptr<void>(), &device.impl().default_stream());
  return stream;
}

Stream Stream::create(const Device& device) {
  Stream stream;
  stream.device_ = device;
  stream.impl_ = device.impl().create_stream();
  return stream;
}

void Stream::synchronize() const {
  FS_CHECK(impl_, kInvalidArgument, "synchronize on an undefined Stream");
  impl_->synchronize();
}

void Stream::wait(const Event& event) const {
  FS_CHECK(impl_, kInvalidArgument, "wait on an undefined Stream");
  impl_->wait(event.impl());
}

Event::Event(const Device& device) : device_(device), impl_(device.impl().create_event()) {}

void Event::record(const Stream& stream) {
  FS_CHECK(stream.device() == device_, kInvalidArgument, "event of device ", device_.spec(),
           " recorded on a stream of device ", stream.device().spec());
  impl_->record(stream.impl());
}

void Event::synchronize() const {
  impl_->synchronize();
}

bool Event::query() const {
  return impl_->query();
}

float Event::elapsed_ms(const Event& end) const {
  return impl_->elapsed_ms(end.impl());
}

// ---- Copies ----

namespace {

void check_range(const char* what, const Buffer& buffer, size_t offset, size_t bytes) {
  FS_CHECK(buffer.defined(), kInvalidArgument, what, ": undefined buffer");
  FS_CHECK(offset <= buffer.size() && bytes <= buffer.size() - offset, kInvalidArgument, what,
           ": range [", offset, ", ", offset + bytes, ") is outside the ", buffer.size(),
           "-byte buffer on ", buffer.device().spec());
}

void check_stream(const char* what, const Stream& stream, const Buffer& buffer) {
  FS_CHECK(stream.defined(), kInvalidArgument, what, ": undefined stream");
  FS_CHECK(stream.device() == buffer.device(), kInvalidArgument, what, ": buffer on ",
           buffer.device().spec(), " used with a stream of ", stream.device().spec());
}

}  // namespace

void copy_host_to_device(const Stream& stream, const Buffer& dst, size_t dst_offset,
                         const void* src, size_t bytes) {
  check_range("copy_host_to_device (destination)", dst, dst_offset, bytes);
  check_stream("copy_host_to_device", stream, dst);
  FS_CHECK(src != nullptr || bytes == 0, kInvalidArgument, "copy_host_to_device: null source");
  if (bytes == 0) return;
  dst.device().impl().copy_to_device(stream.impl(), dst.handle(), dst_offset, src, bytes);
}

void copy_device_to_host(const Stream& stream, void* dst, const Buffer& src, size_t src_offset,
                         size_t bytes) {
  check_range("copy_device_to_host (source)", src, src_offset, bytes);
  check_stream("copy_device_to_host", stream, src);
  FS_CHECK(dst != nullptr || bytes == 0, kInvalidArgument, "copy_device_to_host: null destination");
  if (bytes == 0) return;
  src.device().impl().copy_to_host(stream.impl(), dst, src.handle(), src_offset, bytes);
}

void copy_device_to_device(const Stream& stream, const Buffer& dst, size_t dst_offset,
                           const Buffer& src, size_t src_offset, size_t bytes) {
  check_range("copy_device_to_device (destination)", dst, dst_offset, bytes);
  check_range("copy_device_to_device (source)", src, src_offset, bytes);
  check_stream("copy_device_to_device", stream, dst);
  if (bytes == 0) return;
  if (src.device() == dst.device()) {
    dst.device().impl().copy_on_device(stream.impl(), dst.handle(), dst_offset, src.handle(),
                                       src_offset, bytes);
    return;
  }
  // Across devices (and backends): stage through host memory. The source's own default stream
  // orders the read after prior work there.
  std::vector<std::byte> staging(bytes);
  Stream src_stream = Stream::default_stream(src.device());
  copy_device_to_host(src_stream, staging.data(), src, src_offset, bytes);
  src_stream.synchronize();
  copy_host_to_device(stream, dst, dst_offset, staging.data(), bytes);
}

void fill_bytes(const Stream& stream, const Buffer& dst, size_t offset, size_t bytes,
                uint8_t value) {
  check_range("fill_bytes", dst, offset, bytes);
  check_stream("fill_bytes", stream, dst);
  if (bytes == 0) return;
  dst.device().impl().fill_bytes(stream.impl(), dst.handle(), offset, bytes, value);
}

// ---- PinnedHostBuffer ----

PinnedHostBuffer::PinnedHostBuffer(const Device& device, size_t bytes)
    : device_(device), size_(bytes) {
  if (bytes == 0) return;
  data_ = device.impl().allocate_pinned_host(bytes);
  pinned_ = data_ != nullptr;
  if (!pinned_) {
    data_ = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    FS_CHECK(data_ != nullptr, kOutOfMemory, "cannot allocate ", bytes, " bytes of host memory");
  }
}

PinnedHostBuffer::~PinnedHostBuffer() {
  release();
}

PinnedHostBuffer::PinnedHostBuffer(PinnedHostBuffer&& other) noexcept {
  *this = std::move(other);
}

PinnedHostBuffer& PinnedHostBuffer::operator=(PinnedHostBuffer&& other) noexcept {
  if (this != &other) {
    release();
    device_ = other.device_;
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    pinned_ = std::exchange(other.pinned_, false);
  }
  return *this;
}

void PinnedHostBuffer::release() noexcept {
  if (data_ == nullptr) return;
  if (pinned_) {
    device_.impl().free_pinned_host(data_);
  } else {
    std::free(data_);
  }
  data_ = nullptr;
}

}  // namespace flagstone::runtime
