// CUDA graph capture for runtime::Graph: record a stream's work, instantiate it, launch it. The
// stream and graph are passed as opaque pointers so graph.cc needs no CUDA headers.
#pragma once

namespace flagstone::runtime::cuda {

void begin_capture(int device, void* stream);
// Ends the capture and returns the instantiated graph (a cudaGraphExec_t); throws kBackend when
// the capture was invalidated, after which the stream runs work normally again.
void* end_capture(int device, void* stream);
void launch_graph(int device, void* graph, void* stream);
void destroy_graph(int device, void* graph) noexcept;

}  // namespace flagstone::runtime::cuda
