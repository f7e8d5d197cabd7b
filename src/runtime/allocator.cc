// The caching allocator: size-binned free lists per device, with release-and-retry on OOM.
#include "flagstone/runtime/allocator.h"

#include <utility>

#include "flagstone/base/error.h"

namespace flagstone::runtime {

CachingAllocator::CachingAllocator(std::shared_ptr<DeviceImpl> device)
    : device_(std::move(device)) {}

CachingAllocator::~CachingAllocator() {
  std::shared_ptr<AllocatorPool> active;  // released after the lock: its destructor locks
  {
    std::lock_guard lock(mutex_);
    active = std::move(active_pool_);
    for (AllocatorPool* pool : pools_) {
      // The pool outlives us: its free blocks go back to the device now, its live ones leak.
      for (auto& [size, handle] : pool->free_blocks_) device_->deallocate(handle);
      pool->free_blocks_.clear();
      pool->owner_ = nullptr;
    }
  }
  empty_cache();
}

AllocatorPool::~AllocatorPool() {
  if (owner_) owner_->retire_pool(this);
}

std::shared_ptr<AllocatorPool> CachingAllocator::create_pool() {
  std::shared_ptr<AllocatorPool> pool(new AllocatorPool(this));
  std::lock_guard lock(mutex_);
  pools_.insert(pool.get());
  return pool;
}

void CachingAllocator::set_active_pool(std::shared_ptr<AllocatorPool> pool) {
  FS_CHECK(!pool || pool->owner_ == this, kInvalidArgument,
           "set_active_pool: the pool belongs to another device's allocator");
  std::shared_ptr<AllocatorPool> previous;  // released after the lock: its destructor locks
  std::lock_guard lock(mutex_);
  previous = std::exchange(active_pool_, std::move(pool));
}

void CachingAllocator::retire_pool(AllocatorPool* pool) noexcept {
  std::lock_guard lock(mutex_);
  // Its free blocks become ordinary cache; its live ones return to the cache when released.
  free_blocks_.insert(pool->free_blocks_.begin(), pool->free_blocks_.end());
  pool->free_blocks_.clear();
  for (MemHandle handle : pool->blocks_) pool_blocks_.erase(handle);
  pools_.erase(pool);
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
    AllocatorPool* pool = active_pool_.get();
    auto* list = pool ? &pool->free_blocks_ : &free_blocks_;
    auto it = list->find(rounded);
    if (it == list->end() && pool) {
      list = &free_blocks_;
      it = list->find(rounded);
    }
    if (it != list->end()) {
      MemHandle handle = it->second;
      list->erase(it);
      if (pool && pool->blocks_.insert(handle).second) pool_blocks_[handle] = pool;
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
  if (AllocatorPool* pool = active_pool_.get()) {
    pool->blocks_.insert(handle);
    pool_blocks_[handle] = pool;
  }
  ++stats_.device_allocations;
  stats_.allocated_bytes += rounded;
  stats_.peak_allocated_bytes = std::max(stats_.peak_allocated_bytes, stats_.allocated_bytes);
  return handle;
}

void CachingAllocator::release(MemHandle handle, size_t rounded_bytes) noexcept {
  std::lock_guard lock(mutex_);
  stats_.allocated_bytes -= rounded_bytes;
  stats_.cached_bytes += rounded_bytes;
  auto owner = pool_blocks_.find(handle);
  if (owner != pool_blocks_.end()) {
    owner->second->free_blocks_.emplace(rounded_bytes, handle);
  } else {
    free_blocks_.emplace(rounded_bytes, handle);
  }
}

void CachingAllocator::empty_cache() noexcept {
  std::multimap<size_t, MemHandle> blocks;
  {
    std::lock_guard lock(mutex_);
    blocks.swap(free_blocks_);
    // Free blocks of private pools stay cached (and counted): they are reserved for their graphs.
    for (auto& [size, handle] : blocks) stats_.cached_bytes -= size;
  }
  for (auto& [size, handle] : blocks) device_->deallocate(handle);
}

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

}  // namespace flagstone::runtime
