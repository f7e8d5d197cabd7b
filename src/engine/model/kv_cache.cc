// KV cache storage: allocated once per conversation, filled in place by the forward pass.
#include "flagstone/engine/model/kv_cache.h"

namespace flagstone::engine {

KvCache::KvCache(int64_t layers, int64_t batch, int64_t kv_heads, int64_t capacity,
                 int64_t head_dim, DType dtype, const Device& device)
    : batch_(batch), capacity_(capacity), dtype_(dtype), device_(device) {
  FS_CHECK(layers > 0 && batch > 0 && kv_heads > 0 && capacity > 0 && head_dim > 0,
           kInvalidArgument, "KV cache sizes must be positive: layers ", layers, ", batch ", batch,
           ", kv_heads ", kv_heads, ", capacity ", capacity, ", head_dim ", head_dim);
  Shape shape{batch, capacity, kv_heads, head_dim};
  for (int64_t l = 0; l < layers; ++l) {
    keys_.push_back(Tensor::empty(shape, dtype, device));
    values_.push_back(Tensor::empty(shape, dtype, device));
  }
}

size_t KvCache::nbytes() const {
  size_t total = 0;
  for (size_t l = 0; l < keys_.size(); ++l) total += keys_[l].nbytes() + values_[l].nbytes();
  return total;
}

const Tensor& KvCache::keys(int64_t layer) const {
  FS_CHECK(layer >= 0 && layer < layers(), kInvalidArgument, "KV cache layer ", layer,
           " out of range [0, ", layers(), ")");
  return keys_[layer];
}

const Tensor& KvCache::values(int64_t layer) const {
  FS_CHECK(layer >= 0 && layer < layers(), kInvalidArgument, "KV cache layer ", layer,
           " out of range [0, ", layers(), ")");
  return values_[layer];
}

void KvCache::truncate(int64_t length) {
  FS_CHECK(length >= 0 && length <= length_, kInvalidArgument, "KV cache truncate to ", length,
           " positions, but ", length_, " are filled");
  length_ = length;
}

void KvCache::advance(int64_t count) {
  FS_CHECK(count >= 0 && length_ + count <= capacity_, kInvalidArgument, "KV cache holds ",
           capacity_, " positions; ", length_, " + ", count, " do not fit");
  length_ += count;
}

}  // namespace flagstone::engine
