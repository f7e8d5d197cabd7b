// Where a writer's tensor bytes come from: owned, borrowed or produced on demand.
#include "flagstone/engine/format/tensor_bytes.h"

#include "flagstone/base/error.h"

namespace flagstone::engine::format {

TensorBytes TensorBytes::copy(std::span<const std::byte> bytes) {
  TensorBytes out;
  out.owned_ = std::make_shared<std::vector<std::byte>>(bytes.begin(), bytes.end());
  out.bytes_ = {out.owned_->data(), out.owned_->size()};
  return out;
}

TensorBytes TensorBytes::borrow(std::span<const std::byte> bytes) {
  TensorBytes out;
  out.bytes_ = bytes;
  return out;
}

TensorBytes TensorBytes::of_tensor(const Tensor& tensor) {
  TensorBytes out;
  out.owned_ = std::make_shared<std::vector<std::byte>>(tensor.nbytes());
  tensor.copy_to_host(out.owned_->data(), out.owned_->size());
  out.bytes_ = {out.owned_->data(), out.owned_->size()};
  return out;
}

TensorBytes TensorBytes::generate(std::string_view name, Producer produce) {
  FS_CHECK(produce != nullptr, kInvalidArgument, "tensor '", name, "': no producer given");
  TensorBytes out;
  out.produce_ = std::move(produce);
  return out;
}

void TensorBytes::visit(std::string_view name, uint64_t expected,
                        const std::function<void(std::span<const std::byte>)>& sink) const {
  if (!produce_) {
    sink(bytes_);
    return;
  }
  std::vector<std::byte> bytes = produce_();
  FS_CHECK(bytes.size() == expected, kInternal, "producer of tensor '", name, "' returned ",
           bytes.size(), " bytes, expected ", expected);
  sink(bytes);
}

}  // namespace flagstone::engine::format
