// Reader and writer of the safetensors format (Hugging Face): single files and sharded folders
// with model.safetensors.index.json, memory-mapped, every header field validated against the file.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "flagstone/base/dtype.h"
#include "flagstone/engine/format/mapped_file.h"
#include "flagstone/engine/format/tensor_bytes.h"
#include "flagstone/runtime/tensor.h"

namespace flagstone::engine::format {

// The safetensors name of a dtype ("F32", "BF16", "BOOL"...); throws kUnsupported for the
// block-quantized types, which safetensors cannot hold.
std::string_view safetensors_dtype_name(DType dtype);
// Parses a safetensors dtype name; returns false for names Flagstone does not know.
bool parse_safetensors_dtype(std::string_view name, DType* dtype);

struct SafetensorsTensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;
  // Byte range of the tensor inside the data section (which starts after the header).
  uint64_t data_begin = 0;
  uint64_t data_end = 0;
  uint64_t nbytes() const { return data_end - data_begin; }
};

// One .safetensors file. Cheap to copy: copies share the mapping.
class SafetensorsFile {
 public:
  SafetensorsFile() = default;
  static SafetensorsFile open(const std::string& path);
  // Parses a file already in memory (or mapped); every error names file->path().
  static SafetensorsFile parse(std::shared_ptr<const MappedFile> file);

  const std::string& path() const { return file_->path(); }
  // The optional "__metadata__" string map.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Every tensor, in order of its data offset.
  const std::vector<SafetensorsTensorInfo>& tensors() const { return tensors_; }
  bool contains(std::string_view name) const;
  // kNotFound naming the file and the tensor when absent.
  const SafetensorsTensorInfo& info(std::string_view name) const;
  // The tensor's bytes inside the mapping: no copy. Valid while any copy of this object lives.
  std::span<const std::byte> data(std::string_view name) const;
  // Copies the tensor onto `device` as a contiguous Tensor.
  Tensor load(std::string_view name, const Device& device = Device()) const;
  // File offset of the data section (8 + header length).
  uint64_t data_offset() const { return data_offset_; }

 private:
  std::shared_ptr<const MappedFile> file_;
  uint64_t data_offset_ = 0;
  std::map<std::string, std::string> metadata_;
  std::vector<SafetensorsTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> index_;
};

// A whole model: one file or the shards named by model.safetensors.index.json.
class SafetensorsModel {
 public:
  // `path`: a .safetensors file, a *.safetensors.index.json, or a folder holding
  // model.safetensors.index.json or model.safetensors.
  static SafetensorsModel open(const std::string& path);

  const std::vector<SafetensorsFile>& shards() const { return shards_; }
  // Tensor names in sorted order.
  std::vector<std::string> tensor_names() const;
  bool contains(std::string_view name) const;
  const SafetensorsFile& shard_of(std::string_view name) const;
  const SafetensorsTensorInfo& info(std::string_view name) const;
  std::span<const std::byte> data(std::string_view name) const;
  Tensor load(std::string_view name, const Device& device = Device()) const;
  // Metadata of the first shard ("format": "pt" and the like).
  const std::map<std::string, std::string>& metadata() const;
  // Where the model came from (the file, index or folder given to open()).
  const std::string& source() const { return source_; }

 private:
  std::string source_;
  std::vector<SafetensorsFile> shards_;
  std::map<std::string, size_t, std::less<>> shard_of_;  // tensor name -> index in shards_
};

// Builds a safetensors file: a space-padded header, then the tensors back to back (no holes, as
// the reference reader requires), largest element size first so each starts naturally aligned.
class SafetensorsWriter {
 public:
  void set_metadata(std::string key, std::string value);
  // Copies `bytes` now; they must be exactly dtype x shape in size.
  void add(std::string name, DType dtype, Shape shape, std::span<const std::byte> bytes);
  // Keeps only a pointer: `bytes` must stay valid until write() returns (for large models).
  void add_borrowed(std::string name, DType dtype, Shape shape, std::span<const std::byte> bytes);
  // Copies a tensor of any device and layout to the host, in row-major order.
  void add(std::string name, const Tensor& tensor);
  // Produces the bytes only when the file is written, one tensor at a time, so a whole model
  // never sits in memory; `produce` must return exactly dtype x shape bytes.
  void add_generated(std::string name, DType dtype, Shape shape,
                     std::function<std::vector<std::byte>()> produce);
  size_t size() const { return entries_.size(); }
  // Writes atomically (temporary file, then rename). kIo on failure.
  void write(const std::string& path) const;
  // The complete file image in memory (for tests and fuzz corpora).
  std::vector<std::byte> serialize() const;

 private:
  struct Entry {
    std::string name;
    DType dtype;
    Shape shape;
    TensorBytes bytes;
    uint64_t nbytes = 0;
  };
  void add_entry(Entry entry);
  void for_each_tensor_bytes(const std::function<void(std::span<const std::byte>)>& sink) const;
  std::vector<size_t> write_order() const;
  std::string header() const;
  std::map<std::string, std::string> metadata_;
  std::vector<Entry> entries_;
  std::map<std::string, size_t, std::less<>> names_;
};

// Writes `index_path` (model.safetensors.index.json) mapping each tensor to its shard file name.
void write_safetensors_index(const std::string& index_path,
                             const std::map<std::string, std::string>& weight_map,
                             uint64_t total_size);

}  // namespace flagstone::engine::format
