// The per-device caching allocator: freed blocks are kept in size bins and reused, so steady
// state inference and training loops do not call the driver's allocator at all.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>

#include "flagstone/runtime/backend.h"

namespace flagstone::runtime {

struct AllocatorStats {
  uint64_t allocated_bytes = 0;  // in live Buffers (rounded sizes)
  uint64_t cached_bytes = 0;     // held in the cache, free for reuse
  uint64_t peak_allocated_bytes = 0;
  uint64_t device_allocations = 0;  // calls to the backend's allocate()
  uint64_t cache_hits = 0;
};

class CachingAllocator;

// A private set of blocks for recorded work (graph capture). Blocks allocated while the pool is
// active belong to it for as long as it lives: released, they return to the pool, never to the
// shared cache, so a buffer made outside can never alias memory that a replayed graph writes.
// When the pool dies, its free blocks join the shared cache.
class AllocatorPool {
 public:
  ~AllocatorPool();
  AllocatorPool(const AllocatorPool&) = delete;
  AllocatorPool& operator=(const AllocatorPool&) = delete;

 private:
  friend class CachingAllocator;
  explicit AllocatorPool(CachingAllocator* owner) : owner_(owner) {}
  CachingAllocator* owner_;  // null once the allocator is gone
  std::multimap<size_t, MemHandle> free_blocks_;
  std::set<MemHandle> blocks_;
};

class CachingAllocator {
 public:
  explicit CachingAllocator(std::shared_ptr<DeviceImpl> device);
  ~CachingAllocator();

  // Rounds bytes up to its bin size; reuses a cached block of that size or allocates one. On
  // kOutOfMemory it releases the cache and retries once before rethrowing.
  MemHandle allocate(size_t bytes, size_t* rounded_bytes);
  void release(MemHandle handle, size_t rounded_bytes) noexcept;
  // Gives every cached block back to the backend.
  void empty_cache() noexcept;
  AllocatorStats stats() const;

  // A new, empty private pool of this allocator.
  std::shared_ptr<AllocatorPool> create_pool();
  // While set (not null), every allocation takes its block from `pool` (reusing its free blocks,
  // else the shared cache or the device) and the block stays the pool's. One pool at a time.
  void set_active_pool(std::shared_ptr<AllocatorPool> pool);

  // Bin size for a request: 256 B granularity below 1 MiB, 64 KiB granularity below 64 MiB,
  // 2 MiB above; small enough waste, few distinct bins.
  static size_t round_size(size_t bytes);

 private:
  std::shared_ptr<DeviceImpl> device_;
  mutable std::mutex mutex_;
  friend class AllocatorPool;
  void retire_pool(AllocatorPool* pool) noexcept;

  std::multimap<size_t, MemHandle> free_blocks_;
  AllocatorStats stats_;
  std::shared_ptr<AllocatorPool> active_pool_;
  std::set<AllocatorPool*> pools_;                   // every live pool
  std::map<MemHandle, AllocatorPool*> pool_blocks_;  // block -> the pool that owns it
};

}  // namespace flagstone::runtime
