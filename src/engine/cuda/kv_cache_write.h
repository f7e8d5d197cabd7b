// The kernels the engine launches itself: appending new keys and values to the KV cache at
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

// One decode token per sequence, fused: rotary embedding of its q and k heads, q written to
// `q_out` [batch, q_heads, head_dim] (contiguous), the rotated k and the v heads appended to the
// caches [batch, capacity, kv_heads, head_dim] (contiguous) at position start[b]. `heads` is the
// q/k/v projection [batch, q_heads + 2 kv_heads, head_dim] with row stride `heads_batch` elements
// (heads contiguous inside). cos/sin: [positions, head_dim / 2] tables in the same dtype.
// What the rotary + KV-append kernels read and write besides their outputs.
struct RopeCacheArgs {
  const void* heads = nullptr;
  int64_t heads_batch = 0;
  void* k_cache = nullptr;
  void* v_cache = nullptr;
  int64_t capacity = 0;
  const void* cos = nullptr;
  const void* sin = nullptr;
  int64_t max_positions = 0;
  const int64_t* start = nullptr;
  int64_t batch = 0, q_heads = 0, kv_heads = 0, head_dim = 0;
  bool neox = true;
};
struct RopeKvArgs : RopeCacheArgs {
  void* q_out = nullptr;
};
// dtype_size 4 (f32), 2 with `bf16` false (f16) or true (bf16).
const char* launch_rope_kv_write(const RopeKvArgs& args, int element_bytes, bool bf16, int device,
                                 void* stream);

// Adds one to each of `count` i64 values on the device (the step's positions and lengths), so
// the next recorded step replays at the next position without an upload from the host.
const char* launch_advance_step(int64_t* values, int64_t count, int device, void* stream);

// The greedy pick of a decode step: for each of `rows` rows of `n` logits (row stride
// `row_stride` elements), the index of the largest (NaN first, ties by the lower index, as the
// ops library's argmax) written to out[row * out_stride]; with `step` (i64 [2 * rows]: positions,
// then lengths) set, that row's two entries are also advanced by one. `scratch` holds
// rows * kGreedyScratchPicks picks of kGreedyPickBytes (the kernel uses at most kMaxGreedyChunks
// of them; the head's streamed GEMV, picking as it ends, one a block), `counters` rows zeroed
// unsigned ints (each launch leaves them zero). With `host_ids` (page-locked host memory as the
// device addresses it, kGreedyHostSlots * rows i64) and `step`, the ids also go to slot position %
// kGreedyHostSlots there, so the host reads them with no copy queued behind the step.
inline constexpr int64_t kMaxGreedyChunks = 128;
inline constexpr int64_t kGreedyScratchPicks = 1024;
inline constexpr int64_t kGreedyPickBytes = 16;
inline constexpr int64_t kGreedyHostSlots = 4;
struct GreedyArgs {
  const void* logits = nullptr;
  int64_t rows = 0, n = 0, row_stride = 0;
  int64_t* out = nullptr;
  int64_t out_stride = 1;
  int64_t* step = nullptr;
  void* scratch = nullptr;
  unsigned* counters = nullptr;
  int64_t* host_ids = nullptr;
};
const char* launch_greedy_pick(const GreedyArgs& args, int element_bytes, bool bf16, int device,
                               void* stream);
// The address kernels on `device` use for page-locked host memory `host` (null if it has none).
int64_t* host_ids_on_device(void* host, int device);

// One decode token per sequence: rotary of the q and k heads of `heads` (as RopeKvArgs), k and v
// appended to the caches [batch, capacity, kv_heads, head_dim] at start[b], and attention of
// every query head over positions 0..start[b] written to `out` [batch, q_heads, head_dim], in
// one launch of `splits` blocks per kv head (rope_attention_splits) that merge through
// `partials` (batch * q_heads * 128 * (2 + head_dim) floats) and `counters` (batch * kv_heads
// zeroed unsigned ints, left zero). f16/bf16, head dims 64 and 128, groups of 1 to 8.
struct RopeAttentionArgs : RopeCacheArgs {
  void* out = nullptr;
  float scale = 1;
  int64_t splits = 1;
  float* partials = nullptr;
  unsigned* counters = nullptr;
  // The group's splits run as one thread-block cluster and merge in shared memory, not through
  // `partials` (sm_90; rope_attention_clusters says where it may).
  bool cluster = false;
};
bool rope_attention_supported(const RopeAttentionArgs& args, int element_bytes);
int64_t rope_attention_splits(const RopeAttentionArgs& args, int sms);
// Whether args' split count fits one cluster, on a CUDA device of compute capability 9.0 and up
// (FLAGSTONE_ENGINE_ATTN_CLUSTER=0 turns it off, to measure it).
bool rope_attention_clusters(const RopeAttentionArgs& args, int device);
const char* launch_rope_attention(const RopeAttentionArgs& args, bool bf16, int device,
                                  void* stream);

// Shared by the engine's launchers: makes `device` current (an empty string, or the CUDA error).
// Their kernels use programmatic dependent launch through the ops library's cuda/pdl.cuh.
const char* use_cuda_device(int device);

// Keeps `stream` busy for `microseconds` with one spinning thread, so that work queued behind it
// runs back to back and events around each op time the device alone, not the host's launches
// (for profiling).
const char* launch_device_delay(int device, void* stream, int64_t microseconds);

}  // namespace flagstone::engine::detail
