// The one kernel the engine launches itself: appending new keys and values to the KV cache at
// positions read from device memory, so a recorded decode step writes the right slot every replay.
#pragma once

#include <cstdint>

namespace flagstone::engine::detail {

// Rows of `row_bytes` bytes: for sequence b and new token r, source row
// src[i] + b * src_batch[i] + r * src_token[i] goes to dst[i] + b * dst_batch +
// (start[b] + r) * dst_token, for i = 0 (keys) and 1 (values). Strides count bytes; `start` is
// i64 [batch] on the device. Returns an empty string, or the CUDA error on a failed launch.
struct KvWriteArgs {
  const void* src[2] = {};
  int64_t src_batch[2] = {};
  int64_t src_token[2] = {};
  void* dst[2] = {};
  int64_t dst_batch = 0;
  int64_t dst_token = 0;
  int64_t row_bytes = 0;
  const int64_t* start = nullptr;
  int64_t batch = 0;
  int64_t tokens = 0;
};

// Launches on `stream` (a cudaStream_t) of CUDA device `device`.
const char* launch_kv_cache_write(const KvWriteArgs& args, int device, void* stream);

}  // namespace flagstone::engine::detail
