// The decode step's q/k/v product, rotary, KV append and attention in one launch of thread-block
// clusters (sm_90, one sequence): the host side of qkv_attention.cu.
#pragma once

#include <cstdint>

#include "kv_cache_write.h"

namespace flagstone::engine::detail {

// One token of one sequence at position *start: x (the residual, [hidden]) normalized with
// norm_weight, times the q/k/v weight with its rows by group (each GQA group's query heads, then
// its key, then its value), rotary of q and k, k and v appended to the caches at *start, and
// attention of each query head over positions 0..*start written to out [q_heads, head_dim]. The
// caches, rotary tables and head counts as RopeCacheArgs holds them (batch 1; heads unused).
// f16/bf16; head dims 64 and 128; groups of 1 to 8; no q/k/v bias; rows of whole 4 KiB chunks.
struct QkvAttentionArgs : RopeCacheArgs {
  const void* x = nullptr;
  const void* norm_weight = nullptr;
  float eps = 0;
  const void* w = nullptr;  // [kv_heads * (group + 2) * head_dim, hidden]
  int64_t hidden = 0;
  float scale = 1;
  void* out = nullptr;
};

// Why the kernel cannot serve these arguments on `device` (empty when it can): the shape, the
// device (sm_90) and one cluster of 16 blocks fitting on it.
const char* qkv_attention_refusal(const QkvAttentionArgs& args, int element_bytes, int device);
const char* launch_qkv_attention(const QkvAttentionArgs& args, bool bf16, int device, void* stream);

}  // namespace flagstone::engine::detail
