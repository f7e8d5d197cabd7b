// The staging ring behind CudaDevice::copy_to_device; see cuda_staging.h.
#include "cuda_staging.h"

#include <algorithm>
#include <cstring>

#include "cuda_check.h"

namespace flagstone::runtime::cuda {

bool StagingRing::fits(size_t bytes, size_t* start) const {
  if (pending_.empty()) {
    *start = 0;
    return true;
  }
  const size_t tail = pending_.front().begin;
  if (head_ > tail) {  // live bytes are [tail, head_): room after head_, or before tail
    if (kCapacity - head_ >= bytes) {
      *start = head_;
      return true;
    }
    if (tail >= bytes) {
      *start = 0;
      return true;
    }
    return false;
  }
  // Wrapped: live bytes are [tail, capacity) and [0, head_); the room is [head_, tail).
  if (tail - head_ >= bytes) {
    *start = head_;
    return true;
  }
  return false;
}

void StagingRing::retire_front(int device, bool wait) {
  Region& front = pending_.front();
  if (wait) FS_CUDA_CHECK(device, cudaEventSynchronize(front.done));
  free_events_.push_back(front.done);
  pending_.pop_front();
}

cudaEvent_t StagingRing::take_event(int device) {
  if (!free_events_.empty()) {
    cudaEvent_t event = free_events_.back();
    free_events_.pop_back();
    return event;
  }
  cudaEvent_t event = nullptr;
  FS_CUDA_CHECK(device, cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
  return event;
}

bool StagingRing::upload(int device, cudaStream_t stream, std::byte* dst, const std::byte* src,
                         size_t bytes) {
  std::lock_guard lock(mutex_);
  if (memory_ == nullptr) {
    if (tried_) return false;
    tried_ = true;
    void* memory = nullptr;
    if (cudaHostAlloc(&memory, kCapacity, cudaHostAllocPortable) != cudaSuccess) {
      (void)cudaGetLastError();
      return false;
    }
    memory_ = static_cast<std::byte*>(memory);
  }
  // Regions whose DMA already finished are free; dropping them keeps the event count small.
  while (!pending_.empty()) {
    cudaError_t status = cudaEventQuery(pending_.front().done);
    if (status == cudaErrorNotReady) {
      (void)cudaGetLastError();
      break;
    }
    FS_CUDA_CHECK(device, status);
    retire_front(device, false);
  }
  for (size_t done = 0; done < bytes;) {
    const size_t n = std::min(kChunk, bytes - done);
    const size_t need = (n + kAlign - 1) / kAlign * kAlign;
    size_t start = 0;
    while (!fits(need, &start)) retire_front(device, true);
    cudaEvent_t event = take_event(device);
    std::memcpy(memory_ + start, src + done, n);
    cudaError_t status =
        cudaMemcpyAsync(dst + done, memory_ + start, n, cudaMemcpyHostToDevice, stream);
    if (status == cudaSuccess) status = cudaEventRecord(event, stream);
    if (status != cudaSuccess) {
      free_events_.push_back(event);
      FS_CUDA_CHECK(device, status);
    }
    pending_.push_back({start, start + need, event});
    head_ = start + need;
    done += n;
  }
  return true;
}

void StagingRing::release() noexcept {
  std::lock_guard lock(mutex_);
  if (cuda::exiting()) return;  // the process is ending; the OS takes the memory back
  for (const Region& region : pending_) {
    cuda::ignore(cudaEventSynchronize(region.done));
    cuda::ignore(cudaEventDestroy(region.done));
  }
  for (cudaEvent_t event : free_events_) cuda::ignore(cudaEventDestroy(event));
  pending_.clear();
  free_events_.clear();
  if (memory_ != nullptr) cuda::ignore(cudaFreeHost(memory_));
  memory_ = nullptr;
}

}  // namespace flagstone::runtime::cuda
