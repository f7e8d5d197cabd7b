// GGUF writing (version 3): metadata in insertion order, tensor infos, aligned tensor data.
#include <cstring>
#include <functional>

#include "flagstone/base/error.h"
#include "flagstone/engine/format/gguf.h"
#include "gguf_internal.h"

namespace flagstone::engine::format {

namespace {

// resize + memcpy rather than insert: GCC 12 reports a false overflow for the latter.
template <typename T>
void put(std::vector<std::byte>* out, T value) {
  size_t at = out->size();
  out->resize(at + sizeof(T));
  std::memcpy(out->data() + at, &value, sizeof(T));
}

void put_string(std::vector<std::byte>* out, const std::string& text) {
  put<uint64_t>(out, text.size());
  size_t at = out->size();
  out->resize(at + text.size());
  if (!text.empty()) std::memcpy(out->data() + at, text.data(), text.size());
}

uint64_t align_up(uint64_t value, uint64_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

}  // namespace

GgufWriter::GgufWriter(uint32_t alignment) : alignment_(alignment) {
  FS_CHECK(alignment != 0 && (alignment & (alignment - 1)) == 0, kInvalidArgument,
           "GGUF alignment ", alignment, " is not a power of two");
  if (alignment != kGgufDefaultAlignment) {
    set("general.alignment", GgufValue::scalar<uint32_t>(alignment));
  }
}

void GgufWriter::set(const std::string& key, GgufValue value) {
  for (auto& [existing, old] : metadata_) {
    if (existing == key) {
      old = std::move(value);
      return;
    }
  }
  metadata_.emplace_back(key, std::move(value));
}

void GgufWriter::add_entry(Entry entry) {
  const GgmlTypeInfo* type = ggml_type_info(entry.ggml_type);
  FS_CHECK(type != nullptr, kInvalidArgument, "tensor '", entry.name, "': unknown GGML type ",
           entry.ggml_type);
  FS_CHECK(entry.shape.size() >= 1 && entry.shape.size() <= 4, kInvalidArgument, "tensor '",
           entry.name, "' has shape ", shape_to_string(entry.shape),
           "; GGUF tensors have 1 to 4 dimensions");
  uint64_t numel = 1;
  for (int64_t dim : entry.shape) {
    FS_CHECK(dim >= 0, kInvalidArgument, "tensor '", entry.name, "' has negative shape ",
             shape_to_string(entry.shape));
    numel *= static_cast<uint64_t>(dim);
  }
  FS_CHECK(static_cast<uint64_t>(entry.shape.back()) % type->block_elements == 0, kInvalidArgument,
           "tensor '", entry.name, "' of shape ", shape_to_string(entry.shape),
           ": the last dimension must be a multiple of the ", type->name, " block of ",
           type->block_elements);
  uint64_t expected = numel / type->block_elements * type->block_bytes;
  entry.nbytes = expected;
  FS_CHECK(entry.bytes.generated() || entry.bytes.size() == expected, kInvalidArgument, "tensor '",
           entry.name, "' of ", type->name, shape_to_string(entry.shape), " needs ", expected,
           " bytes, got ", entry.bytes.size());
  FS_CHECK(tensor_index_.emplace(entry.name, tensors_.size()).second, kInvalidArgument, "tensor '",
           entry.name, "' was added twice to the GGUF writer");
  tensors_.push_back(std::move(entry));
}

void GgufWriter::add_tensor(std::string name, uint32_t ggml_type, Shape shape,
                            std::span<const std::byte> bytes) {
  add_entry(Entry{std::move(name), ggml_type, std::move(shape), TensorBytes::copy(bytes)});
}

void GgufWriter::add_tensor(std::string name, DType dtype, Shape shape,
                            std::span<const std::byte> bytes) {
  add_tensor(std::move(name), ggml_type_of(dtype), std::move(shape), bytes);
}

void GgufWriter::add_tensor_borrowed(std::string name, uint32_t ggml_type, Shape shape,
                                     std::span<const std::byte> bytes) {
  add_entry(Entry{std::move(name), ggml_type, std::move(shape), TensorBytes::borrow(bytes)});
}

void GgufWriter::add_tensor_generated(std::string name, uint32_t ggml_type, Shape shape,
                                      std::function<std::vector<std::byte>()> produce) {
  TensorBytes bytes = TensorBytes::generate(name, std::move(produce));
  add_entry(Entry{std::move(name), ggml_type, std::move(shape), std::move(bytes)});
}

void GgufWriter::for_each_tensor_bytes(
    const std::function<void(const Entry&, std::span<const std::byte>)>& sink) const {
  for (const Entry& entry : tensors_) {
    entry.bytes.visit(entry.name, entry.nbytes,
                      [&](std::span<const std::byte> bytes) { sink(entry, bytes); });
  }
}

void GgufWriter::add_tensor(std::string name, const Tensor& tensor) {
  FS_CHECK(tensor.defined(), kInvalidArgument, "tensor '", name,
           "' added to the GGUF writer is undefined");
  uint32_t type = ggml_type_of(tensor.dtype());
  add_entry(Entry{std::move(name), type, tensor.shape(), TensorBytes::of_tensor(tensor)});
}

std::vector<std::byte> GgufWriter::header_bytes() const {
  std::vector<std::byte> out;
  put<uint32_t>(&out, kGgufMagic);
  put<uint32_t>(&out, 3);
  put<uint64_t>(&out, tensors_.size());
  put<uint64_t>(&out, metadata_.size());
  for (const auto& [key, value] : metadata_) {
    put_string(&out, key);
    put<uint32_t>(&out, static_cast<uint32_t>(value.type()));
    if (value.is_array()) {
      put<uint32_t>(&out, static_cast<uint32_t>(value.element_type()));
      put<uint64_t>(&out, value.size());
    }
    if (value.element_type() == GgufValueType::kString) {
      for (const std::string& text : value.strings()) put_string(&out, text);
    } else {
      out.insert(out.end(), value.raw().begin(), value.raw().end());
    }
  }
  uint64_t offset = 0;
  for (const Entry& entry : tensors_) {
    put_string(&out, entry.name);
    put<uint32_t>(&out, static_cast<uint32_t>(entry.shape.size()));
    for (auto it = entry.shape.rbegin(); it != entry.shape.rend(); ++it) {
      put<uint64_t>(&out, static_cast<uint64_t>(*it));
    }
    put<uint32_t>(&out, entry.ggml_type);
    put<uint64_t>(&out, offset);
    offset = align_up(offset + entry.nbytes, alignment_);
  }
  out.resize(align_up(out.size(), alignment_));
  return out;
}

std::vector<std::byte> GgufWriter::serialize() const {
  std::vector<std::byte> out = header_bytes();
  for_each_tensor_bytes([&](const Entry&, std::span<const std::byte> bytes) {
    out.insert(out.end(), bytes.begin(), bytes.end());
    out.resize(align_up(out.size(), alignment_));
  });
  return out;
}

void GgufWriter::write(const std::string& path) const {
  std::vector<std::byte> header = header_bytes();
  AtomicFileWriter out(path);
  out.write(header.data(), header.size());
  for_each_tensor_bytes([&](const Entry&, std::span<const std::byte> bytes) {
    out.write(bytes.data(), bytes.size());
    out.write_zeros(align_up(out.position(), alignment_) - out.position());
  });
  out.commit();
}

}  // namespace flagstone::engine::format
