// The key/value cache of a decoder: one [batch, capacity, kv_heads, head_dim] key and value
// tensor per layer on the model's device, plus how many positions of each are filled.
#pragma once

#include <cstdint>
#include <vector>

#include "flagstone/runtime/tensor.h"

namespace flagstone::engine {

class KvCache {
 public:
  KvCache() = default;
  KvCache(int64_t layers, int64_t batch, int64_t kv_heads, int64_t capacity, int64_t head_dim,
          DType dtype, const Device& device);

  int64_t layers() const { return static_cast<int64_t>(keys_.size()); }
  int64_t batch() const { return batch_; }
  int64_t capacity() const { return capacity_; }
  // Positions filled so far (the same for every sequence of the batch).
  int64_t length() const { return length_; }
  DType dtype() const { return dtype_; }
  const Device& device() const { return device_; }
  size_t nbytes() const;

  // The whole storage of one layer: [batch, capacity, kv_heads, head_dim]. A position's heads
  // are adjacent, so a new token is one contiguous row per sequence, and the layout is the paged
  // attention op's [blocks, block_size, kv_heads, head_dim] with one block per sequence.
  const Tensor& keys(int64_t layer) const;
  const Tensor& values(int64_t layer) const;

  // Forgets positions from `length` on, so a conversation can keep its shared prefix and
  // recompute only what changed; kInvalidArgument when `length` exceeds what is filled.
  void truncate(int64_t length);
  void clear() { truncate(0); }
  // Marks `count` more positions filled (the model calls this after writing them);
  // kInvalidArgument naming the capacity when they do not fit.
  void advance(int64_t count);

 private:
  std::vector<Tensor> keys_, values_;
  int64_t batch_ = 0;
  int64_t capacity_ = 0;
  int64_t length_ = 0;
  DType dtype_ = DType::kF32;
  Device device_;
};

}  // namespace flagstone::engine
