// The whole decode step of a llama-shaped model in one persistent CUDA kernel: embedding row to
// logits, every layer's norms, products, rotary, KV append and attention between grid barriers.
#pragma once

#include <cstdint>

namespace flagstone::engine::detail {

// One layer's weights and caches, all 16-byte aligned and contiguous, in the step's dtype.
struct MegaLayer {
  const void* qkv = nullptr;      // [(q_heads + 2 kv_heads) * head_dim, hidden]
  const void* o = nullptr;        // [hidden, q_heads * head_dim]
  const void* gate_up = nullptr;  // [2 * intermediate, hidden]: gate rows, then up rows
  const void* down = nullptr;     // [hidden, intermediate]
  const void* input_norm = nullptr;
  const void* post_norm = nullptr;
  void* k_cache = nullptr;  // [capacity, kv_heads, head_dim] (batch 1)
  void* v_cache = nullptr;
};

// What one launch reads and writes. The step is batch 1: `token` and `step` (position, then
// length) are the device buffers the greedy pick advances. The activation buffers and the
// scratch are the step's own; `tickets` (kv_heads) start at zero and are left at zero; `barrier`
// must be zero at launch (launch_decode_megakernel clears it first).
struct MegaArgs {
  const MegaLayer* layers = nullptr;  // device array of `layer_count`
  int layer_count = 0;
  const void* embed = nullptr;  // [vocab, hidden]
  const void* final_norm = nullptr;
  const void* head = nullptr;  // [vocab, hidden] (the embedding table when tied)
  const int64_t* token = nullptr;
  const int64_t* step = nullptr;
  const void* cos = nullptr;  // [max_positions, head_dim / 2]
  const void* sin = nullptr;
  int64_t max_positions = 0, capacity = 0;
  int64_t hidden = 0, q_heads = 0, kv_heads = 0, head_dim = 0, intermediate = 0, vocab = 0;
  float eps = 1e-6f, scale = 1;
  bool neox = true;
  void* residual = nullptr;   // [hidden]
  void* qkv_out = nullptr;    // [(q_heads + 2 kv_heads) * head_dim]
  void* attn_out = nullptr;   // [q_heads * head_dim]
  void* act = nullptr;        // [intermediate]
  void* logits = nullptr;     // [vocab]
  float* partials = nullptr;  // q_heads * splits * (head_dim + 2)
  unsigned* tickets = nullptr;
  unsigned* barrier = nullptr;
  int splits = 1;  // attention splits per kv head
  // Diagnostics (FLAGSTONE_ENGINE_PERSISTENT_TRACE=1): block 0 prints where its time went at the
  // step whose position is trace_position.
  int64_t trace_position = -1;
  // Filled by plan_decode_megakernel: the grid, the weight ring in shared memory.
  int blocks = 0, slots = 0, slot_bytes = 0, shared_bytes = 0;
};

// Whether the kernel serves these shapes on `device` (f16 or bf16 by `bf16`), and if so fills
// blocks, splits, slots, slot_bytes and shared_bytes. Returns an empty string, or why not.
const char* plan_decode_megakernel(MegaArgs& args, bool bf16, int device);

// Clears the barrier and launches on `stream` (a cudaStream_t); an empty string or the error.
const char* launch_decode_megakernel(const MegaArgs& args, bool bf16, int device, void* stream);

}  // namespace flagstone::engine::detail
