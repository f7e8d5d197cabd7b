// Reader and writer of GGUF v2/v3 files (llama.cpp's format): typed metadata, tensor infos and
// memory-mapped tensor data, with every count, length and offset checked against the file.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "flagstone/base/dtype.h"
#include "flagstone/engine/format/mapped_file.h"
#include "flagstone/engine/format/tensor_bytes.h"
#include "flagstone/runtime/tensor.h"

namespace flagstone::engine::format {

inline constexpr uint32_t kGgufDefaultAlignment = 32;

enum class GgufValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

std::string_view gguf_value_type_name(GgufValueType type);

// One metadata value: a scalar, a string, or an array of scalars or strings (nested arrays are
// refused). Numbers are kept as their little-endian bytes so that a round trip is exact.
class GgufValue {
 public:
  GgufValue() = default;

  template <typename T>
  static GgufValue scalar(T value);  // uint8_t ... double, bool
  static GgufValue string(std::string value);
  template <typename T>
  static GgufValue array(const std::vector<T>& values);  // numeric or bool elements
  static GgufValue string_array(std::vector<std::string> values);
  // Builds a value from raw little-endian element bytes (used by the reader).
  static GgufValue from_raw(GgufValueType type, GgufValueType element_type, size_t count,
                            std::vector<std::byte> raw, std::vector<std::string> strings);

  GgufValueType type() const { return type_; }
  bool is_array() const { return type_ == GgufValueType::kArray; }
  // The element type of an array (its own type for a scalar).
  GgufValueType element_type() const { return element_type_; }
  size_t size() const { return count_; }  // elements of an array, 1 for a scalar
  std::string type_name() const;          // "u32", "array[string]"...

  // Converting reads; each throws kInvalidArgument naming both types when the value does not fit.
  int64_t as_int() const;    // any integer type (and bool)
  uint64_t as_uint() const;  // non-negative integers
  double as_float() const;   // floats and integers
  bool as_bool() const;
  const std::string& as_string() const;
  std::vector<int64_t> as_int_array() const;
  std::vector<double> as_float_array() const;
  const std::vector<std::string>& as_string_array() const;
  // Numeric payload bytes (scalar or array elements), little-endian.
  std::span<const std::byte> raw() const { return raw_; }
  const std::vector<std::string>& strings() const { return strings_; }

  bool operator==(const GgufValue& other) const = default;

 private:
  double element_as_float(size_t index) const;
  int64_t element_as_int(size_t index) const;
  GgufValueType type_ = GgufValueType::kUint8;
  GgufValueType element_type_ = GgufValueType::kUint8;
  size_t count_ = 0;
  std::vector<std::byte> raw_;
  std::vector<std::string> strings_;
};

// GGML tensor types: the block geometry of all of them (so any file can be opened and
// validated) and the Flagstone dtype of those Flagstone computes with.
struct GgmlTypeInfo {
  std::string_view name;  // "Q4_K"
  uint32_t block_elements = 0;
  uint32_t block_bytes = 0;
  std::optional<DType> dtype;
};
// nullptr when `type` is not a GGML type this build knows.
const GgmlTypeInfo* ggml_type_info(uint32_t type);
// The GGML type id of a dtype; kUnsupported for u8 and bool, which GGUF cannot hold.
uint32_t ggml_type_of(DType dtype);

struct GgufTensorInfo {
  std::string name;
  uint32_t ggml_type = 0;
  std::optional<DType> dtype;  // empty for GGML types Flagstone does not compute with
  std::vector<uint64_t> ne;    // GGUF order: ne[0] is the innermost (contiguous) dimension
  Shape shape;                 // Flagstone order: the reverse of ne
  uint64_t offset = 0;         // from the start of the data section
  uint64_t nbytes = 0;
};

// One GGUF file. Cheap to copy: copies share the mapping.
class GgufFile {
 public:
  GgufFile() = default;
  static GgufFile open(const std::string& path);
  // Parses bytes already in memory (or mapped); every error names file->path().
  static GgufFile parse(std::shared_ptr<const MappedFile> file);

  const std::string& path() const { return file_->path(); }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }

  // Metadata in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return metadata_; }
  const GgufValue* find(std::string_view key) const;
  // kFormat naming the file and key when missing or of the wrong type.
  const GgufValue& get(std::string_view key) const;
  std::string get_string(std::string_view key) const;
  uint64_t get_uint(std::string_view key) const;
  double get_float(std::string_view key) const;
  // "general.architecture"; kFormat when absent.
  std::string architecture() const { return get_string("general.architecture"); }

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  bool contains(std::string_view name) const;
  const GgufTensorInfo& info(std::string_view name) const;  // kNotFound naming file and tensor
  // The tensor's bytes inside the mapping: no copy.
  std::span<const std::byte> data(std::string_view name) const;
  // Copies the tensor onto `device` with its Flagstone dtype (block types stay quantized);
  // kUnsupported naming the tensor and GGML type when it has no Flagstone dtype.
  Tensor load(std::string_view name, const Device& device = Device()) const;

 private:
  std::shared_ptr<const MappedFile> file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = kGgufDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::map<std::string, size_t, std::less<>> metadata_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

// Builds a GGUF v3 file: header, metadata in insertion order, tensor infos, then the data with
// each tensor aligned to `alignment` (written as general.alignment when not the default 32).
class GgufWriter {
 public:
  explicit GgufWriter(uint32_t alignment = kGgufDefaultAlignment);
  // Sets a key (replacing an earlier value but keeping its position).
  void set(const std::string& key, GgufValue value);
  // `shape` in Flagstone order (outermost first); the innermost dimension must hold whole
  // blocks of the GGML type. Copies `bytes`.
  void add_tensor(std::string name, uint32_t ggml_type, Shape shape,
                  std::span<const std::byte> bytes);
  void add_tensor(std::string name, DType dtype, Shape shape, std::span<const std::byte> bytes);
  // Keeps only a pointer: `bytes` must stay valid until write() returns.
  void add_tensor_borrowed(std::string name, uint32_t ggml_type, Shape shape,
                           std::span<const std::byte> bytes);
  void add_tensor(std::string name, const Tensor& tensor);  // copied to the host
  // Produces the bytes only when the file is written, one tensor at a time, so a whole model
  // never sits in memory; `produce` must return exactly the tensor's size.
  void add_tensor_generated(std::string name, uint32_t ggml_type, Shape shape,
                            std::function<std::vector<std::byte>()> produce);
  size_t tensor_count() const { return tensors_.size(); }
  void write(const std::string& path) const;
  std::vector<std::byte> serialize() const;

 private:
  struct Entry {
    std::string name;
    uint32_t ggml_type;
    Shape shape;
    TensorBytes bytes;
    uint64_t nbytes = 0;
  };
  void add_entry(Entry entry);
  // Calls `sink` with each tensor's bytes in file order.
  void for_each_tensor_bytes(
      const std::function<void(const Entry&, std::span<const std::byte>)>& sink) const;
  std::vector<std::byte> header_bytes() const;  // up to the aligned start of the data section
  uint32_t alignment_;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::vector<Entry> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

}  // namespace flagstone::engine::format
