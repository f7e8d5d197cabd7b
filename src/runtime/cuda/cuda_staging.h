// Pinned staging ring of the CUDA backend: keeps host-to-device uploads asynchronous on the
// device while the caller may reuse the source as soon as copy_to_device returns.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <deque>
#include <mutex>
#include <vector>

namespace flagstone::runtime::cuda {

// Pinned staging memory for uploads from pageable host memory: a byte ring. Each upload copies
// its source into the next free region and enqueues a DMA from there; an event marks when the
// region is free again. The host returns as soon as the source is copied, so uploads stay
// asynchronous on the device while the caller may reuse `src` at once, as the contract says.
class StagingRing {
 public:
  // Returns false when no pinned memory could be had; the caller then copies directly.
  bool upload(int device, cudaStream_t stream, std::byte* dst, const std::byte* src, size_t bytes);
  void release() noexcept;

 private:
  static constexpr size_t kCapacity = size_t{16} << 20;
  static constexpr size_t kChunk = size_t{4} << 20;  // big copies pipeline memcpy and DMA
  static constexpr size_t kAlign = 256;
  struct Region {
    size_t begin;
    size_t end;
    cudaEvent_t done;
  };

  bool fits(size_t bytes, size_t* start) const;
  void retire_front(int device, bool wait);
  cudaEvent_t take_event(int device);

  std::mutex mutex_;
  bool tried_ = false;
  std::byte* memory_ = nullptr;
  size_t head_ = 0;             // end of the newest region
  std::deque<Region> pending_;  // oldest first, in ring order
  std::vector<cudaEvent_t> free_events_;
};

}  // namespace flagstone::runtime::cuda
