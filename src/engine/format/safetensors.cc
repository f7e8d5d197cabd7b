// Safetensors reading: header parsing and validation, zero-copy tensor access, sharded models.
#include "flagstone/engine/format/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "flagstone/base/error.h"

namespace flagstone::engine::format {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The reference implementation refuses headers above 100 MB; so do we, before parsing.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

struct DTypeName {
  std::string_view name;
  DType dtype;
};

constexpr DTypeName kDTypeNames[] = {
    {"F64", DType::kF64}, {"F32", DType::kF32},   {"F16", DType::kF16}, {"BF16", DType::kBF16},
    {"I64", DType::kI64}, {"I32", DType::kI32},   {"I16", DType::kI16}, {"I8", DType::kI8},
    {"U8", DType::kU8},   {"BOOL", DType::kBool},
};

[[noreturn]] void format_error(const std::string& path, const std::string& what) {
  throw_error(ErrorCategory::kFormat, "safetensors file '", path, "': ", what);
}

// Reads a JSON array of non-negative integers; false when the value is anything else.
bool read_uint_array(const json& value, std::vector<uint64_t>* out) {
  if (!value.is_array()) return false;
  out->clear();
  for (const json& item : value) {
    if (!item.is_number_unsigned()) return false;
    out->push_back(item.get<uint64_t>());
  }
  return true;
}

SafetensorsTensorInfo parse_entry(const std::string& path, const std::string& name,
                                  const json& entry, uint64_t data_size) {
  auto fail = [&](const std::string& what) {
    format_error(path, "tensor '" + name + "': " + what);
  };
  if (!entry.is_object()) fail("header entry is not a JSON object");
  SafetensorsTensorInfo info;
  info.name = name;

  auto dtype_it = entry.find("dtype");
  if (dtype_it == entry.end() || !dtype_it->is_string()) fail("missing string field \"dtype\"");
  const std::string& dtype_text = dtype_it->get_ref<const std::string&>();
  if (!parse_safetensors_dtype(dtype_text, &info.dtype)) {
    fail("unknown or unsupported dtype \"" + dtype_text +
         "\" (supported: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL)");
  }

  auto shape_it = entry.find("shape");
  std::vector<uint64_t> dims;
  if (shape_it == entry.end() || !read_uint_array(*shape_it, &dims)) {
    fail("field \"shape\" must be an array of non-negative integers");
  }
  if (dims.size() > 64) fail("shape has " + std::to_string(dims.size()) + " dimensions");
  uint64_t numel = 1;
  for (uint64_t dim : dims) {
    if (dim > static_cast<uint64_t>(INT64_MAX)) fail("a dimension does not fit in int64");
    if (numel != 0 && dim != 0 && numel > UINT64_MAX / dim) fail("element count overflows");
    numel *= dim;
    info.shape.push_back(static_cast<int64_t>(dim));
  }
  uint64_t element_bytes = dtype_size(info.dtype);
  if (numel > UINT64_MAX / element_bytes) fail("byte size overflows");
  uint64_t expected_bytes = numel * element_bytes;

  auto offsets_it = entry.find("data_offsets");
  std::vector<uint64_t> offsets;
  if (offsets_it == entry.end() || !read_uint_array(*offsets_it, &offsets) || offsets.size() != 2) {
    fail("field \"data_offsets\" must be an array of two non-negative integers");
  }
  info.data_begin = offsets[0];
  info.data_end = offsets[1];
  if (info.data_begin > info.data_end) {
    fail("data_offsets [" + std::to_string(info.data_begin) + ", " + std::to_string(info.data_end) +
         "] end before they begin");
  }
  if (info.data_end > data_size) {
    fail("data_offsets [" + std::to_string(info.data_begin) + ", " + std::to_string(info.data_end) +
         "] run past the data section of " + std::to_string(data_size) +
         " bytes (file truncated?)");
  }
  if (info.nbytes() != expected_bytes) {
    fail("data_offsets span " + std::to_string(info.nbytes()) + " bytes but dtype " + dtype_text +
         " x shape " + shape_to_string(info.shape) + " needs " + std::to_string(expected_bytes));
  }
  return info;
}

}  // namespace

std::string_view safetensors_dtype_name(DType dtype) {
  for (const DTypeName& entry : kDTypeNames) {
    if (entry.dtype == dtype) return entry.name;
  }
  throw_error(ErrorCategory::kUnsupported, "dtype ", dtype_name(dtype),
              " cannot be stored in safetensors (use GGUF for block-quantized tensors)");
}

bool parse_safetensors_dtype(std::string_view name, DType* dtype) {
  for (const DTypeName& entry : kDTypeNames) {
    if (entry.name == name) {
      *dtype = entry.dtype;
      return true;
    }
  }
  return false;
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  return parse(MappedFile::open(path));
}

SafetensorsFile SafetensorsFile::parse(std::shared_ptr<const MappedFile> file) {
  FS_ASSERT(file != nullptr);
  const std::string& path = file->path();
  const uint64_t size = file->size();
  if (size < 8) {
    format_error(
        path, "file is " + std::to_string(size) + " bytes, too short for the 8-byte header length");
  }
  uint64_t header_bytes = 0;
  for (int i = 7; i >= 0; --i) {
    header_bytes = (header_bytes << 8) | std::to_integer<uint64_t>(file->data()[i]);
  }
  if (header_bytes > size - 8) {
    format_error(path, "header length " + std::to_string(header_bytes) + " exceeds the " +
                           std::to_string(size - 8) +
                           " bytes after it (truncated or not safetensors)");
  }
  if (header_bytes > kMaxHeaderBytes) {
    format_error(path,
                 "header length " + std::to_string(header_bytes) + " is above the 100 MB limit");
  }
  const char* text = reinterpret_cast<const char*>(file->data() + 8);
  json header;
  try {
    header = json::parse(text, text + header_bytes);
  } catch (const json::exception& e) {
    format_error(path, std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) format_error(path, "header is not a JSON object");

  SafetensorsFile result;
  result.file_ = std::move(file);
  result.data_offset_ = 8 + header_bytes;
  const uint64_t data_size = size - result.data_offset_;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) format_error(path, "\"__metadata__\" is not a JSON object");
      for (const auto& [meta_key, meta_value] : value.items()) {
        if (!meta_value.is_string()) {
          format_error(path, "\"__metadata__\" value of \"" + meta_key + "\" is not a string");
        }
        result.metadata_[meta_key] = meta_value.get<std::string>();
      }
      continue;
    }
    result.tensors_.push_back(parse_entry(path, key, value, data_size));
  }
  std::sort(result.tensors_.begin(), result.tensors_.end(),
            [](const SafetensorsTensorInfo& a, const SafetensorsTensorInfo& b) {
              return a.data_begin != b.data_begin ? a.data_begin < b.data_begin
                                                  : a.data_end < b.data_end;
            });
  for (size_t i = 0; i < result.tensors_.size(); ++i) {
    const SafetensorsTensorInfo& info = result.tensors_[i];
    if (i > 0) {
      const SafetensorsTensorInfo& prev = result.tensors_[i - 1];
      if (prev.data_end > info.data_begin) {
        format_error(path, "tensors '" + prev.name + "' and '" + info.name +
                               "' overlap in the data section");
      }
    }
    result.index_.emplace(info.name, i);
  }
  return result;
}

bool SafetensorsFile::contains(std::string_view name) const {
  return index_.find(name) != index_.end();
}

const SafetensorsTensorInfo& SafetensorsFile::info(std::string_view name) const {
  auto it = index_.find(name);
  FS_CHECK(it != index_.end(), kNotFound, "tensor '", name, "' is not in safetensors file '",
           path(), "'");
  return tensors_[it->second];
}

std::span<const std::byte> SafetensorsFile::data(std::string_view name) const {
  const SafetensorsTensorInfo& entry = info(name);
  return {file_->data() + data_offset_ + entry.data_begin, static_cast<size_t>(entry.nbytes())};
}

Tensor SafetensorsFile::load(std::string_view name, const Device& device) const {
  const SafetensorsTensorInfo& entry = info(name);
  std::span<const std::byte> bytes = data(name);
  return Tensor::from_host(bytes.data(), bytes.size(), entry.shape, entry.dtype, device);
}

SafetensorsModel SafetensorsModel::open(const std::string& path) {
  SafetensorsModel model;
  model.source_ = path;
  std::error_code ec;
  fs::path index_path;
  if (fs::is_directory(path, ec)) {
    fs::path folder(path);
    if (fs::exists(folder / "model.safetensors.index.json", ec)) {
      index_path = folder / "model.safetensors.index.json";
    } else if (fs::exists(folder / "model.safetensors", ec)) {
      model.shards_.push_back(SafetensorsFile::open((folder / "model.safetensors").string()));
    } else {
      throw_error(ErrorCategory::kNotFound, "folder '", path,
                  "' has neither model.safetensors.index.json nor model.safetensors");
    }
  } else if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0) {
    index_path = path;
  } else {
    model.shards_.push_back(SafetensorsFile::open(path));
  }

  if (!index_path.empty()) {
    const std::string index_name = index_path.string();
    auto index_file = MappedFile::open(index_name);
    const char* text = reinterpret_cast<const char*>(index_file->data());
    json index;
    try {
      index = json::parse(text, text + index_file->size());
    } catch (const json::exception& e) {
      throw_error(ErrorCategory::kFormat, "safetensors index '", index_name,
                  "' is not valid JSON: ", e.what());
    }
    FS_CHECK(index.is_object() && index.contains("weight_map") && index["weight_map"].is_object(),
             kFormat, "safetensors index '", index_name, "' has no \"weight_map\" object");
    std::map<std::string, size_t> shard_index;
    for (const auto& [tensor, shard] : index["weight_map"].items()) {
      FS_CHECK(shard.is_string(), kFormat, "safetensors index '", index_name, "': tensor '", tensor,
               "' maps to a non-string shard name");
      const std::string& shard_name = shard.get_ref<const std::string&>();
      fs::path shard_rel(shard_name);
      bool safe = !shard_name.empty() && shard_rel.is_relative();
      for (const auto& part : shard_rel) safe = safe && part != "..";
      FS_CHECK(safe, kFormat, "safetensors index '", index_name, "': tensor '", tensor,
               "' maps to shard \"", shard_name, "\", which is not a file inside the folder");
      auto it = shard_index.find(shard_name);
      if (it == shard_index.end()) {
        fs::path shard_path = index_path.parent_path() / shard_rel;
        it = shard_index.emplace(shard_name, model.shards_.size()).first;
        model.shards_.push_back(SafetensorsFile::open(shard_path.string()));
      }
      const SafetensorsFile& file = model.shards_[it->second];
      FS_CHECK(file.contains(tensor), kFormat, "safetensors index '", index_name, "' maps tensor '",
               tensor, "' to shard '", file.path(), "', which does not contain it");
      model.shard_of_.emplace(tensor, it->second);
    }
  } else {
    for (const SafetensorsTensorInfo& info : model.shards_[0].tensors()) {
      model.shard_of_.emplace(info.name, 0);
    }
  }
  return model;
}

std::vector<std::string> SafetensorsModel::tensor_names() const {
  std::vector<std::string> names;
  names.reserve(shard_of_.size());
  for (const auto& [name, shard] : shard_of_) names.push_back(name);
  return names;
}

bool SafetensorsModel::contains(std::string_view name) const {
  return shard_of_.find(name) != shard_of_.end();
}

const SafetensorsFile& SafetensorsModel::shard_of(std::string_view name) const {
  auto it = shard_of_.find(name);
  FS_CHECK(it != shard_of_.end(), kNotFound, "tensor '", name, "' is not in model '", source_, "'");
  return shards_[it->second];
}

const SafetensorsTensorInfo& SafetensorsModel::info(std::string_view name) const {
  return shard_of(name).info(name);
}

std::span<const std::byte> SafetensorsModel::data(std::string_view name) const {
  return shard_of(name).data(name);
}

Tensor SafetensorsModel::load(std::string_view name, const Device& device) const {
  return shard_of(name).load(name, device);
}

const std::map<std::string, std::string>& SafetensorsModel::metadata() const {
  static const std::map<std::string, std::string> kEmpty;
  return shards_.empty() ? kEmpty : shards_[0].metadata();
}

}  // namespace flagstone::engine::format
