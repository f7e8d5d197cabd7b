// Graph capture: the backend records the device's default stream while the caching allocator
// hands out blocks from the graph's private pool. Only CUDA records for now; a backend that can
// adds its branch here.
#include "flagstone/runtime/graph.h"

#include "flagstone/base/error.h"

#ifdef FLAGSTONE_HAVE_CUDA
#include "cuda/cuda_graph.h"
#endif

namespace flagstone::runtime {

struct Graph::Impl {
  Device device;
  void* exec = nullptr;
  ~Impl() {
#ifdef FLAGSTONE_HAVE_CUDA
    cuda::destroy_graph(device.index(), exec);
#endif
  }
};

#ifdef FLAGSTONE_HAVE_CUDA
namespace {

void* stream_of(const Device& device) {
  return device.impl().default_stream().native_handle();
}

}  // namespace
#endif

bool Graph::supported(const Device& device) {
#ifdef FLAGSTONE_HAVE_CUDA
  return device.backend() == "cuda";
#else
  (void)device;
  return false;
#endif
}

Graph Graph::capture(const Device& device, const std::function<void()>& body,
                     std::shared_ptr<AllocatorPool> pool) {
  FS_CHECK(supported(device), kUnsupported, "graph capture on ", device.spec(), ": the ",
           device.backend(), " backend cannot record work");
  FS_CHECK(pool != nullptr, kInvalidArgument, "graph capture on ", device.spec(),
           " needs an allocator pool");
  auto impl = std::make_shared<Impl>();
  impl->device = device;
#ifdef FLAGSTONE_HAVE_CUDA
  CachingAllocator& allocator = device.allocator();
  void* stream = stream_of(device);
  cuda::begin_capture(device.index(), stream);
  allocator.set_active_pool(pool);
  try {
    body();
  } catch (...) {
    // End the recording so the stream runs work again; what was recorded is dropped.
    allocator.set_active_pool(nullptr);
    try {
      cuda::destroy_graph(device.index(), cuda::end_capture(device.index(), stream));
    } catch (const Error&) {
    }
    throw;
  }
  allocator.set_active_pool(nullptr);
  impl->exec = cuda::end_capture(device.index(), stream);
#else
  (void)body;
#endif
  Graph graph;
  graph.impl_ = std::move(impl);
  graph.pool_ = std::move(pool);
  return graph;
}

void Graph::replay() const {
  FS_CHECK(impl_ != nullptr, kInvalidArgument, "replay of an empty graph");
#ifdef FLAGSTONE_HAVE_CUDA
  cuda::launch_graph(impl_->device.index(), impl_->exec, stream_of(impl_->device));
#endif
}

}  // namespace flagstone::runtime
