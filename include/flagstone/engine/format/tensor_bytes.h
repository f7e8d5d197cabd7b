// The bytes of one tensor headed for a model file, shared by the safetensors and GGUF writers:
// copied when added, borrowed from the caller, or produced only when the file is written.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "flagstone/runtime/tensor.h"

namespace flagstone::engine::format {

class TensorBytes {
 public:
  using Producer = std::function<std::vector<std::byte>()>;

  TensorBytes() = default;
  static TensorBytes copy(std::span<const std::byte> bytes);
  // Keeps only a pointer: `bytes` must stay valid until the file is written.
  static TensorBytes borrow(std::span<const std::byte> bytes);
  // Every element of `tensor` (any device, any layout) copied to the host in row-major order.
  static TensorBytes of_tensor(const Tensor& tensor);
  // `produce` runs when the file is written, so a whole model never sits in memory;
  // kInvalidArgument naming `name` when it is empty.
  static TensorBytes generate(std::string_view name, Producer produce);

  bool generated() const { return produce_ != nullptr; }
  // The size of copied or borrowed bytes (a producer's is known only when it runs).
  size_t size() const { return bytes_.size(); }
  // Calls `sink` with the bytes, running the producer first when there is one; kInternal
  // naming tensor `name` when it returns other than `expected` bytes.
  void visit(std::string_view name, uint64_t expected,
             const std::function<void(std::span<const std::byte>)>& sink) const;

 private:
  std::shared_ptr<std::vector<std::byte>> owned_;
  std::span<const std::byte> bytes_;
  Producer produce_;
};

}  // namespace flagstone::engine::format
