// GGUF reading: a bounds-checked cursor over the mapped file, then metadata, tensor infos and
// the data section, each field validated so that a corrupt file gives kFormat, never a crash.
#include <algorithm>
#include <cstring>

#include "flagstone/base/error.h"
#include "flagstone/engine/format/gguf.h"
#include "gguf_internal.h"

namespace flagstone::engine::format {

namespace {

constexpr uint32_t kMaxDims = 4;  // GGML_MAX_DIMS

class Cursor {
 public:
  explicit Cursor(const MappedFile& file)
      : path_(file.path()), data_(file.data()), size_(file.size()) {}

  uint64_t position() const { return pos_; }
  uint64_t left() const { return size_ - pos_; }
  void set_context(std::string context) { context_ = std::move(context); }

  [[noreturn]] void fail(const std::string& what) const {
    throw_error(ErrorCategory::kFormat, "GGUF file '", path_, "': ", context_,
                context_.empty() ? "" : ": ", what);
  }

  void need(uint64_t bytes, const char* what) const {
    if (bytes > left()) {
      fail(std::string("truncated: ") + what + " at byte " + std::to_string(pos_) + " needs " +
           std::to_string(bytes) + " bytes, " + std::to_string(left()) + " left");
    }
  }

  template <typename T>
  T read(const char* what) {
    need(sizeof(T), what);
    T value;
    std::memcpy(&value, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }

  std::string read_string(const char* what) {
    uint64_t length = read<uint64_t>(what);
    need(length, what);
    std::string text(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(length));
    pos_ += length;
    return text;
  }

  std::vector<std::byte> read_bytes(uint64_t bytes, const char* what) {
    need(bytes, what);
    std::vector<std::byte> out(data_ + pos_, data_ + pos_ + bytes);
    pos_ += bytes;
    return out;
  }

 private:
  const std::string& path_;
  const std::byte* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
  std::string context_;
};

GgufValueType read_value_type(Cursor& in, const char* what) {
  uint32_t raw = in.read<uint32_t>(what);
  if (!gguf_value_type_valid(raw)) in.fail("unknown value type " + std::to_string(raw));
  return static_cast<GgufValueType>(raw);
}

GgufValue read_value(Cursor& in, GgufValueType type) {
  if (type == GgufValueType::kString) {
    return GgufValue::from_raw(type, type, 1, {}, {in.read_string("string value")});
  }
  if (type != GgufValueType::kArray) {
    size_t bytes = gguf_scalar_size(type);
    return GgufValue::from_raw(type, type, 1, in.read_bytes(bytes, "value"), {});
  }
  GgufValueType element = read_value_type(in, "array element type");
  uint64_t count = in.read<uint64_t>("array length");
  if (element == GgufValueType::kArray) in.fail("nested arrays are not supported");
  if (element == GgufValueType::kString) {
    // Each string takes at least its 8-byte length: bound the count before reserving.
    if (count > in.left() / 8) {
      in.fail("array of " + std::to_string(count) + " strings does not fit in the " +
              std::to_string(in.left()) + " bytes left");
    }
    std::vector<std::string> strings;
    strings.reserve(static_cast<size_t>(count));
    for (uint64_t i = 0; i < count; ++i) strings.push_back(in.read_string("array string"));
    return GgufValue::from_raw(type, element, static_cast<size_t>(count), {}, std::move(strings));
  }
  uint64_t element_bytes = gguf_scalar_size(element);
  if (count > in.left() / element_bytes) {
    in.fail("array of " + std::to_string(count) + " " + std::string(gguf_value_type_name(element)) +
            " does not fit in the " + std::to_string(in.left()) + " bytes left");
  }
  return GgufValue::from_raw(type, element, static_cast<size_t>(count),
                             in.read_bytes(count * element_bytes, "array data"), {});
}

}  // namespace

GgufFile GgufFile::open(const std::string& path) {
  return parse(MappedFile::open(path));
}

GgufFile GgufFile::parse(std::shared_ptr<const MappedFile> file) {
  FS_ASSERT(file != nullptr);
  GgufFile result;
  result.file_ = file;
  Cursor in(*file);

  if (file->size() < 4 || in.read<uint32_t>("magic") != kGgufMagic) {
    in.fail("not a GGUF file (the first four bytes are not \"GGUF\")");
  }
  uint32_t version = in.read<uint32_t>("version");
  if (version == 1) {
    throw_error(ErrorCategory::kUnsupported, "GGUF file '", file->path(),
                "' is version 1, which is obsolete; convert it again with a current tool");
  }
  if (version != 2 && version != 3) {
    uint32_t swapped = __builtin_bswap32(version);
    if (swapped == 2 || swapped == 3) {
      throw_error(ErrorCategory::kUnsupported, "GGUF file '", file->path(),
                  "' is big-endian, which Flagstone does not read");
    }
    in.fail("unknown GGUF version " + std::to_string(version) + " (supported: 2 and 3)");
  }
  result.version_ = version;
  uint64_t tensor_count = in.read<uint64_t>("tensor count");
  uint64_t kv_count = in.read<uint64_t>("metadata count");
  // The smallest key/value pair is 13 bytes (empty key, type, one-byte value) and the smallest
  // tensor info 24: bound both counts by the file size before reserving anything.
  if (kv_count > in.left() / 13) {
    in.fail("metadata count " + std::to_string(kv_count) + " cannot fit in the file");
  }
  result.metadata_.reserve(static_cast<size_t>(kv_count));
  for (uint64_t i = 0; i < kv_count; ++i) {
    in.set_context("metadata entry " + std::to_string(i));
    std::string key = in.read_string("metadata key");
    in.set_context("metadata key '" + key + "'");
    GgufValueType type = read_value_type(in, "value type");
    GgufValue value = read_value(in, type);
    if (!result.metadata_index_.emplace(key, result.metadata_.size()).second) {
      in.fail("duplicate key");
    }
    result.metadata_.emplace_back(std::move(key), std::move(value));
  }

  if (const GgufValue* alignment = result.find("general.alignment")) {
    in.set_context("metadata key 'general.alignment'");
    if (alignment->type() != GgufValueType::kUint32) {
      in.fail("has type " + alignment->type_name() + ", expected u32");
    }
    uint64_t value = alignment->as_uint();
    if (value == 0 || (value & (value - 1)) != 0) {
      in.fail("alignment " + std::to_string(value) + " is not a power of two");
    }
    result.alignment_ = value;
  }

  in.set_context("");
  if (tensor_count > in.left() / 24) {
    in.fail("tensor count " + std::to_string(tensor_count) + " cannot fit in the file");
  }
  result.tensors_.reserve(static_cast<size_t>(tensor_count));
  for (uint64_t i = 0; i < tensor_count; ++i) {
    in.set_context("tensor info " + std::to_string(i));
    GgufTensorInfo info;
    info.name = in.read_string("tensor name");
    in.set_context("tensor '" + info.name + "'");
    uint32_t n_dims = in.read<uint32_t>("dimension count");
    if (n_dims > kMaxDims) {
      in.fail("has " + std::to_string(n_dims) + " dimensions (at most 4)");
    }
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t dim = in.read<uint64_t>("dimension");
      if (dim > static_cast<uint64_t>(INT64_MAX)) in.fail("dimension does not fit in int64");
      if (numel != 0 && dim != 0 && numel > static_cast<uint64_t>(INT64_MAX) / dim) {
        in.fail("element count overflows");
      }
      numel *= dim;
      info.ne.push_back(dim);
    }
    for (auto it = info.ne.rbegin(); it != info.ne.rend(); ++it) {
      info.shape.push_back(static_cast<int64_t>(*it));
    }
    info.ggml_type = in.read<uint32_t>("tensor type");
    const GgmlTypeInfo* type = ggml_type_info(info.ggml_type);
    if (type == nullptr) in.fail("unknown GGML type " + std::to_string(info.ggml_type));
    info.dtype = type->dtype;
    uint64_t row = info.ne.empty() ? 1 : info.ne[0];
    if (row % type->block_elements != 0) {
      in.fail("innermost dimension " + std::to_string(row) + " is not a multiple of the " +
              std::string(type->name) + " block of " + std::to_string(type->block_elements));
    }
    uint64_t blocks = numel / type->block_elements;
    if (blocks > UINT64_MAX / type->block_bytes) in.fail("byte size overflows");
    info.nbytes = blocks * type->block_bytes;
    info.offset = in.read<uint64_t>("tensor data offset");
    if (info.offset % result.alignment_ != 0) {
      in.fail("data offset " + std::to_string(info.offset) +
              " is not a multiple of the alignment " + std::to_string(result.alignment_));
    }
    if (!result.tensor_index_.emplace(info.name, result.tensors_.size()).second) {
      in.fail("duplicate tensor name");
    }
    result.tensors_.push_back(std::move(info));
  }

  in.set_context("");
  uint64_t end_of_infos = in.position();
  uint64_t padding = (result.alignment_ - end_of_infos % result.alignment_) % result.alignment_;
  result.data_offset_ = end_of_infos + padding;
  uint64_t data_size = file->size() > result.data_offset_ ? file->size() - result.data_offset_ : 0;

  std::vector<const GgufTensorInfo*> by_offset;
  for (const GgufTensorInfo& info : result.tensors_) {
    if (info.offset > data_size || info.nbytes > data_size - info.offset) {
      in.set_context("tensor '" + info.name + "'");
      in.fail("data [" + std::to_string(info.offset) + ", +" + std::to_string(info.nbytes) +
              ") runs past the data section of " + std::to_string(data_size) +
              " bytes (file truncated?)");
    }
    by_offset.push_back(&info);
  }
  std::sort(by_offset.begin(), by_offset.end(), [](const auto* a, const auto* b) {
    return a->offset != b->offset ? a->offset < b->offset : a->nbytes < b->nbytes;
  });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    if (by_offset[i - 1]->offset + by_offset[i - 1]->nbytes > by_offset[i]->offset) {
      in.fail("tensors '" + by_offset[i - 1]->name + "' and '" + by_offset[i]->name +
              "' overlap in the data section");
    }
  }
  return result;
}

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = metadata_index_.find(key);
  return it == metadata_index_.end() ? nullptr : &metadata_[it->second].second;
}

const GgufValue& GgufFile::get(std::string_view key) const {
  const GgufValue* value = find(key);
  FS_CHECK(value != nullptr, kFormat, "GGUF file '", path(), "' has no metadata key '", key, "'");
  return *value;
}

std::string GgufFile::get_string(std::string_view key) const {
  const GgufValue& value = get(key);
  FS_CHECK(value.type() == GgufValueType::kString, kFormat, "GGUF file '", path(),
           "': metadata key '", key, "' has type ", value.type_name(), ", expected string");
  return value.as_string();
}

uint64_t GgufFile::get_uint(std::string_view key) const {
  const GgufValue& value = get(key);
  try {
    return value.as_uint();
  } catch (const Error& e) {
    throw_error(ErrorCategory::kFormat, "GGUF file '", path(), "': metadata key '", key,
                "': ", e.message());
  }
}

double GgufFile::get_float(std::string_view key) const {
  const GgufValue& value = get(key);
  try {
    return value.as_float();
  } catch (const Error& e) {
    throw_error(ErrorCategory::kFormat, "GGUF file '", path(), "': metadata key '", key,
                "': ", e.message());
  }
}

bool GgufFile::contains(std::string_view name) const {
  return tensor_index_.find(name) != tensor_index_.end();
}

const GgufTensorInfo& GgufFile::info(std::string_view name) const {
  auto it = tensor_index_.find(name);
  FS_CHECK(it != tensor_index_.end(), kNotFound, "tensor '", name, "' is not in GGUF file '",
           path(), "'");
  return tensors_[it->second];
}

std::span<const std::byte> GgufFile::data(std::string_view name) const {
  const GgufTensorInfo& entry = info(name);
  return {file_->data() + data_offset_ + entry.offset, static_cast<size_t>(entry.nbytes)};
}

Tensor GgufFile::load(std::string_view name, const Device& device) const {
  const GgufTensorInfo& entry = info(name);
  if (!entry.dtype) {
    throw_error(ErrorCategory::kUnsupported, "tensor '", name, "' of GGUF file '", path(),
                "' has GGML type ", ggml_type_info(entry.ggml_type)->name,
                ", which Flagstone cannot compute with (supported: F32 F16 BF16 Q8_0 Q4_0 Q4_K "
                "Q6_K and the integer types)");
  }
  std::span<const std::byte> bytes = data(name);
  return Tensor::from_host(bytes.data(), bytes.size(), entry.shape, *entry.dtype, device);
}

}  // namespace flagstone::engine::format
