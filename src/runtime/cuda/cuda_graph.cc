// CUDA graph capture in relaxed mode: the caching allocator may still cudaMalloc blocks for the
// graph's private pool while a capture records, which does not synchronize the captured stream.
#include "cuda_graph.h"

#include <cuda_runtime_api.h>

#include "cuda_check.h"

namespace flagstone::runtime::cuda {

void begin_capture(int device, void* stream) {
  use_device(device);
  FS_CUDA_CHECK(device, cudaStreamBeginCapture(static_cast<cudaStream_t>(stream),
                                               cudaStreamCaptureModeRelaxed));
}

void* end_capture(int device, void* stream) {
  use_device(device);
  cudaGraph_t graph = nullptr;
  cudaError_t status = cudaStreamEndCapture(static_cast<cudaStream_t>(stream), &graph);
  if (status != cudaSuccess) {
    if (graph != nullptr) ignore(cudaGraphDestroy(graph));
    throw_cuda_error(status, "cudaStreamEndCapture(stream, &graph)", device, __FILE__, __LINE__,
                     "the capture was invalidated: work inside it synchronized or otherwise "
                     "did something a graph cannot record");
  }
  cudaGraphExec_t exec = nullptr;
  status = cudaGraphInstantiate(&exec, graph, 0);
  ignore(cudaGraphDestroy(graph));
  if (status != cudaSuccess) {
    throw_cuda_error(status, "cudaGraphInstantiate(&exec, graph, 0)", device, __FILE__, __LINE__);
  }
  return exec;
}

void launch_graph(int device, void* graph, void* stream) {
  use_device(device);
  FS_CUDA_CHECK(device, cudaGraphLaunch(static_cast<cudaGraphExec_t>(graph),
                                        static_cast<cudaStream_t>(stream)));
}

void destroy_graph(int device, void* graph) noexcept {
  if (graph != nullptr && use_device_quietly(device))
    ignore(cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(graph)));
}

}  // namespace flagstone::runtime::cuda
