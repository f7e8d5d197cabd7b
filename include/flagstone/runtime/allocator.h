// The per-device caching allocator: freed blocks are kept in size bins and reused, so steady
// state inference and training loops do not call the driver's allocator at all.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>

#include "flagstone/runtime/backend.h"

namespace flagstone::runtime {

struct AllocatorStats {
  uint64_t allocated_bytes = 0;  // in live Buffers (rounded sizes)
  uint64_t cached_bytes = 0;     // held in the cache, free for reuse
  uint64_t peak_allocated_bytes = 0;
  uint64_t device_allocations = 0;  // calls to the backend's allocate()
  uint64_t cache_hits = 0;
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

  // Bin size for a request: 256 B granularity below 1 MiB, 64 KiB granularity below 64 MiB,
  // 2 MiB above; small enough waste, few distinct bins.
  static size_t round_size(size_t bytes);

 private:
  std::shared_ptr<DeviceImpl> device_;
  mutable std::mutex mutex_;
  std::multimap<size_t, MemHandle> free_blocks_;
  AllocatorStats stats_;
};

}  // namespace flagstone::runtime
