// What a CUDA graph being recorded holds so far: its node kinds and, for kernels, how often each
// kernel appears. For `bench model --profile`, to see the launches one decode step replays.
#pragma once

#include <string>

namespace flagstone::engine::detail {

// For the graph that `stream` (a cudaStream_t) is capturing now, a one-line summary such as
// "183 nodes: 181 kernels (gemv_rows<bf16> x 64, ...), 2 memcpy"; empty when the stream is not
// capturing or the graph cannot be read.
std::string describe_capture(void* stream);

}  // namespace flagstone::engine::detail
