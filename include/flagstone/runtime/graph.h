// Recorded device work replayed with one launch (CUDA graphs): a decode step of hundreds of small
// kernels costs one host call instead of one per kernel.
#pragma once

#include <functional>
#include <memory>

#include "flagstone/runtime/allocator.h"
#include "flagstone/runtime/device.h"

namespace flagstone::runtime {

class Graph {
 public:
  Graph() = default;

  // True when `device`'s backend can record work (cuda, in a build with CUDA).
  static bool supported(const Device& device);

  // Runs `body` while recording the work it issues on `device`'s default stream; nothing runs
  // until replay(). Every buffer allocated inside comes from `pool` (create one with
  // device.allocator().create_pool(); graphs that replay one after another may share it), so
  // memory the graph reads or writes is never handed to buffers made outside it. The inputs the
  // graph reads and the outputs it writes are the buffers `body` used: change their contents,
  // not the tensors, between replays. `body` must not synchronize or copy from the host.
  // kUnsupported when the backend cannot record; kBackend when recording failed (the error says
  // why), after which the stream works normally again.
  static Graph capture(const Device& device, const std::function<void()>& body,
                       std::shared_ptr<AllocatorPool> pool);

  bool defined() const { return impl_ != nullptr; }
  // Issues the recorded work again on the device's default stream (asynchronously).
  void replay() const;

 private:
  struct Impl;  // the backend's executable graph
  std::shared_ptr<Impl> impl_;
  std::shared_ptr<AllocatorPool> pool_;  // outlives the graph that uses its blocks
};

}  // namespace flagstone::runtime
