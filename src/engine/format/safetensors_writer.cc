// Safetensors writing: the header with space padding, then the tensors back to back.
#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "flagstone/base/error.h"
#include "flagstone/engine/format/safetensors.h"

namespace flagstone::engine::format {

namespace {

using nlohmann::json;

void append_u64(std::vector<std::byte>* out, uint64_t value) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<std::byte>((value >> (8 * i)) & 0xff));
}

}  // namespace

void SafetensorsWriter::set_metadata(std::string key, std::string value) {
  metadata_[std::move(key)] = std::move(value);
}

void SafetensorsWriter::add_entry(Entry entry) {
  FS_CHECK(!entry.name.empty() && entry.name != "__metadata__", kInvalidArgument,
           "safetensors tensor name \"", entry.name, "\" is reserved or empty");
  FS_CHECK(names_.find(entry.name) == names_.end(), kInvalidArgument, "tensor '", entry.name,
           "' was added twice to the safetensors writer");
  safetensors_dtype_name(entry.dtype);  // rejects block-quantized types
  for (int64_t dim : entry.shape) {
    FS_CHECK(dim >= 0, kInvalidArgument, "tensor '", entry.name, "' has negative shape ",
             shape_to_string(entry.shape));
  }
  size_t expected = dtype_bytes(entry.dtype, shape_numel(entry.shape));
  entry.nbytes = expected;
  FS_CHECK(entry.bytes.generated() || entry.bytes.size() == expected, kInvalidArgument, "tensor '",
           entry.name, "' of ", dtype_name(entry.dtype), shape_to_string(entry.shape), " needs ",
           expected, " bytes, got ", entry.bytes.size());
  names_.emplace(entry.name, entries_.size());
  entries_.push_back(std::move(entry));
}

void SafetensorsWriter::add(std::string name, DType dtype, Shape shape,
                            std::span<const std::byte> bytes) {
  add_entry(Entry{std::move(name), dtype, std::move(shape), TensorBytes::copy(bytes)});
}

void SafetensorsWriter::add_borrowed(std::string name, DType dtype, Shape shape,
                                     std::span<const std::byte> bytes) {
  add_entry(Entry{std::move(name), dtype, std::move(shape), TensorBytes::borrow(bytes)});
}

void SafetensorsWriter::add_generated(std::string name, DType dtype, Shape shape,
                                      std::function<std::vector<std::byte>()> produce) {
  TensorBytes bytes = TensorBytes::generate(name, std::move(produce));
  add_entry(Entry{std::move(name), dtype, std::move(shape), std::move(bytes)});
}

void SafetensorsWriter::for_each_tensor_bytes(
    const std::function<void(std::span<const std::byte>)>& sink) const {
  for (size_t i : write_order()) {
    const Entry& entry = entries_[i];
    entry.bytes.visit(entry.name, entry.nbytes, sink);
  }
}

void SafetensorsWriter::add(std::string name, const Tensor& tensor) {
  FS_CHECK(tensor.defined(), kInvalidArgument, "tensor '", name,
           "' added to the safetensors writer is undefined");
  add_entry(Entry{std::move(name), tensor.dtype(), tensor.shape(), TensorBytes::of_tensor(tensor)});
}

// Tensors go in order of decreasing element size (stable otherwise) so that every tensor starts
// at a multiple of its element size, which lets readers use the mapped bytes in place.
std::vector<size_t> SafetensorsWriter::write_order() const {
  std::vector<size_t> order(entries_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return dtype_size(entries_[a].dtype) > dtype_size(entries_[b].dtype);
  });
  return order;
}

std::string SafetensorsWriter::header() const {
  std::vector<size_t> order = write_order();
  json root = json::object();
  if (!metadata_.empty()) root["__metadata__"] = metadata_;
  uint64_t offset = 0;
  for (size_t i : order) {
    const Entry& entry = entries_[i];
    uint64_t end = offset + entry.nbytes;
    root[entry.name] = {{"dtype", safetensors_dtype_name(entry.dtype)},
                        {"shape", entry.shape},
                        {"data_offsets", {offset, end}}};
    offset = end;
  }
  std::string text = root.dump();
  // Pad with spaces so that the data section starts 8-byte aligned.
  while ((text.size() + 8) % 8 != 0) text.push_back(' ');
  return text;
}

std::vector<std::byte> SafetensorsWriter::serialize() const {
  std::string text = header();
  std::vector<std::byte> out;
  append_u64(&out, text.size());
  const auto* text_bytes = reinterpret_cast<const std::byte*>(text.data());
  out.insert(out.end(), text_bytes, text_bytes + text.size());
  for_each_tensor_bytes(
      [&](std::span<const std::byte> bytes) { out.insert(out.end(), bytes.begin(), bytes.end()); });
  return out;
}

void SafetensorsWriter::write(const std::string& path) const {
  std::string text = header();
  std::vector<std::byte> length;
  append_u64(&length, text.size());
  AtomicFileWriter out(path);
  out.write(length.data(), length.size());
  out.write(text.data(), text.size());
  for_each_tensor_bytes(
      [&](std::span<const std::byte> bytes) { out.write(bytes.data(), bytes.size()); });
  out.commit();
}

void write_safetensors_index(const std::string& index_path,
                             const std::map<std::string, std::string>& weight_map,
                             uint64_t total_size) {
  json root = {{"metadata", {{"total_size", total_size}}}, {"weight_map", weight_map}};
  std::string text = root.dump(2) + "\n";
  AtomicFileWriter out(index_path);
  out.write(text.data(), text.size());
  out.commit();
}

}  // namespace flagstone::engine::format
