// The decode step's q/k/v product, rotary, KV append and attention in one launch of thread-block
// clusters (sm_90, one sequence): the host side of qkv_attention.cu.
#pragma once

#include <cstdint>

namespace flagstone::engine::detail {

// One token of one sequence at position *start: x (the residual, [hidden]) normalized with
// norm_weight, times the q/k/v weight stored by group (group_major_qkv_rows), rotary of q and k,
// k and v appended to the caches [capacity, kv_heads, head_dim] at *start, and attention of each
// query head over positions 0..*start written to out [q_heads, head_dim]. f16/bf16; head dims 64
// and 128; groups of 1 to 8; no q/k/v bias; hidden a multiple of 2 KiB of elements' bytes.
struct QkvAttentionArgs {
  const void* x = nullptr;
  const void* norm_weight = nullptr;
  float eps = 0;
  const void* w = nullptr;  // [kv_heads * (group + 2) * head_dim, hidden], rows by group
  int64_t hidden = 0;
  void* k_cache = nullptr;
  void* v_cache = nullptr;
  int64_t capacity = 0;
  const int64_t* start = nullptr;
  const void* cos = nullptr;  // [max_positions, head_dim / 2]
  const void* sin = nullptr;
  int64_t max_positions = 0;
  bool neox = false;
  int64_t q_heads = 0, kv_heads = 0, head_dim = 0;
  float scale = 1;
  void* out = nullptr;
};

// The row of the by-group weight that row `r` of the stacked q/k/v weight moves to: group h holds
// its query heads' rows, then its key's, then its value's.
int64_t group_major_qkv_row(int64_t r, int64_t q_heads, int64_t kv_heads, int64_t head_dim);

// Why the kernel cannot serve these arguments on `device` (empty when it can): the shape, the
// device (sm_90) and one cluster of 16 blocks fitting on it.
const char* qkv_attention_refusal(const QkvAttentionArgs& args, int element_bytes, int device);
const char* launch_qkv_attention(const QkvAttentionArgs& args, bool bf16, int device, void* stream);

}  // namespace flagstone::engine::detail
