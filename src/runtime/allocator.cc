// The caching allocator: size-binned free lists per device, with release-and-retry on OOM.
#include "flagstone/runtime/allocator.h"

#include "flagstone/base/error.h"

namespace flagstone::runtime {

CachingAllocator::CachingAllocator(std::shared_ptr<DeviceImpl> device)
    : device_(std::move(device)) {}

CachingAllocator::~CachingAllocator() {
  empty_cache();
}

size_t CachingAllocator::round_size(size_t bytes) {
  constexpr size_t kKiB = 1024;
  constexpr size_t kMiB = 1024 * kKiB;
  auto round_up = [](size_t value, size_t unit) { return (value + unit - 1) / unit * unit; };
  if (bytes == 0) return 256;
  if (bytes < kMiB) return round_up(bytes, 256);
  if (bytes < 64 * kMiB) return round_up(bytes, 64 * kKiB);
  return round_up(bytes, 2 * kMiB);
}

MemHandle CachingAllocator::allocate(size_t bytes, size_t* rounded_bytes) {
  size_t rounded = round_size(bytes);
  *rounded_bytes = rounded;
  {
    std::lock_guard lock(mutex_);
    auto it = free_blocks_.find(rounded);
    if (it != free_blocks_.end()) {
      MemHandle handle = it->second;
      free_blocks_.erase(it);
      stats_.cached_bytes -= rounded;
      stats_.allocated_bytes += rounded;
      stats_.peak_allocated_bytes = std::max(stats_.peak_allocated_bytes, stats_.allocated_bytes);
      ++stats_.cache_hits;
      return handle;
    }
  }
  MemHandle handle = nullptr;
  try {
    handle = device_->allocate(rounded);
  } catch (const Error& error) {
    if (error.category() != ErrorCategory::kOutOfMemory) throw;
    empty_cache();
    handle = device_->allocate(rounded);
  }
  std::lock_guard lock(mutex_);
  ++stats_.device_allocations;
  stats_.allocated_bytes += rounded;
  stats_.peak_allocated_bytes = std::max(stats_.peak_allocated_bytes, stats_.allocated_bytes);
  return handle;
}

void CachingAllocator::release(MemHandle handle, size_t rounded_bytes) noexcept {
  std::lock_guard lock(mutex_);
  stats_.allocated_bytes -= rounded_bytes;
  stats_.cached_bytes += rounded_bytes;
  free_blocks_.emplace(rounded_bytes, handle);
}

void CachingAllocator::empty_cache() noexcept {
  std::multimap<size_t, MemHandle> blocks;
  {
    std::lock_guard lock(mutex_);
    blocks.swap(free_blocks_);
    stats_.cached_bytes = 0;
  }
  for (auto& [size, handle] : blocks) device_->deallocate(handle);
}

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

}  // namespace flagstone::runtime
