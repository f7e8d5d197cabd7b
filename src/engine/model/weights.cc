// Weight sources over safetensors and GGUF, host dtype conversion and device uploads.
#include "weights.h"

#include <algorithm>
#include <cstring>

#include "flagstone/base/half.h"
#include "flagstone/engine/format/convert.h"
#include "flagstone/engine/format/quant.h"

namespace flagstone::engine::detail {
namespace {

class SafetensorsSource : public WeightSource {
 public:
  explicit SafetensorsSource(const std::string& path)
      : model_(format::SafetensorsModel::open(path)) {}
  WeightFormat format() const override { return WeightFormat::kHuggingFace; }
  const std::string& path() const override { return model_.source(); }
  std::string native_name(const std::string& hf_name) const override { return hf_name; }
  bool contains(const std::string& name) const override { return model_.contains(name); }
  DType dtype(const std::string& name) const override { return model_.info(name).dtype; }
  Shape shape(const std::string& name) const override { return model_.info(name).shape; }
  std::span<const std::byte> bytes(const std::string& name) const override {
    return model_.data(name);
  }

 private:
  format::SafetensorsModel model_;
};

class GgufSource : public WeightSource {
 public:
  explicit GgufSource(format::GgufFile file) : file_(std::move(file)) {}
  WeightFormat format() const override { return WeightFormat::kGguf; }
  const std::string& path() const override { return file_.path(); }
  std::string native_name(const std::string& hf_name) const override {
    return format::gguf_tensor_name(hf_name);
  }
  bool contains(const std::string& name) const override { return file_.contains(name); }
  DType dtype(const std::string& name) const override {
    const format::GgufTensorInfo& info = file_.info(name);
    if (!info.dtype) {
      const format::GgmlTypeInfo* type = format::ggml_type_info(info.ggml_type);
      throw_error(ErrorCategory::kUnsupported, "GGUF file '", file_.path(), "': tensor '", name,
                  "' is of GGML type ", type ? std::string(type->name) : "?",
                  ", which Flagstone cannot compute with (f32, f16, bf16, q8_0, q4_0, q4_k and "
                  "q6_k are supported)");
    }
    return *info.dtype;
  }
  Shape shape(const std::string& name) const override { return file_.info(name).shape; }
  std::span<const std::byte> bytes(const std::string& name) const override {
    return file_.data(name);
  }

 private:
  format::GgufFile file_;
};

// Values of a plain or block type as f32 (the block kernels and f16/bf16 widen exactly).
std::vector<float> to_f32(std::span<const std::byte> src, DType from, int64_t count) {
  std::vector<float> out(static_cast<size_t>(count));
  if (from == DType::kF64) {
    for (int64_t i = 0; i < count; ++i)
      out[i] = static_cast<float>(load_as_double(src.data(), from, i));
  } else {
    format::dequantize(from, src.data(), out.data(), count);
  }
  return out;
}

}  // namespace

std::unique_ptr<WeightSource> open_safetensors_source(const std::string& path) {
  return std::make_unique<SafetensorsSource>(path);
}

std::unique_ptr<WeightSource> open_gguf_source(const format::GgufFile& file) {
  return std::make_unique<GgufSource>(file);
}

std::vector<std::byte> convert_values(std::span<const std::byte> src, DType from, DType to,
                                      int64_t count) {
  FS_CHECK(src.size() == dtype_bytes(from, count), kInternal, "convert_values: ", src.size(),
           " bytes for ", count, " values of ", dtype_name(from));
  if (from == to) return std::vector<std::byte>(src.begin(), src.end());
  bool float_source = is_floating(from) || is_quantized(from);
  FS_CHECK(float_source && is_floating(to), kUnsupported, "cannot convert weights from ",
           dtype_name(from), " to ", dtype_name(to));
  std::vector<std::byte> out(dtype_bytes(to, count));
  if (to == DType::kF64) {
    // f16, bf16 and f32 widen exactly through f32; only f64 itself needs no detour.
    std::vector<float> wide = to_f32(src, from, count);
    auto* dst = reinterpret_cast<double*>(out.data());
    for (int64_t i = 0; i < count; ++i) dst[i] = wide[i];
    return out;
  }
  std::vector<float> wide = to_f32(src, from, count);
  if (to == DType::kF32) {
    std::memcpy(out.data(), wide.data(), out.size());
  } else {
    format::quantize(to, wide.data(), out.data(), count);
  }
  return out;
}

WeightLoader::WeightLoader(const WeightSource& source, const Device& device,
                           std::function<void(const LoadProgress&)> progress)
    : source_(source), device_(device), progress_(std::move(progress)) {}

bool WeightLoader::contains(const std::string& hf_name) const {
  return source_.contains(source_.native_name(hf_name));
}

void WeightLoader::plan(const std::vector<std::string>& hf_names) {
  for (const std::string& name : hf_names) {
    std::string native = source_.native_name(name);
    if (!source_.contains(native)) continue;
    state_.bytes_total += source_.bytes(native).size();
    ++state_.tensors_total;
  }
}

DType WeightLoader::stored_dtype(const std::string& hf_name) const {
  return source_.dtype(source_.native_name(hf_name));
}

void WeightLoader::report(const std::string& name, uint64_t bytes) {
  state_.tensor = name;
  state_.bytes_done += bytes;
  ++state_.tensors_done;
  if (progress_) progress_(state_);
}

std::vector<std::byte> WeightLoader::converted(const std::string& hf_name, const Shape& shape,
                                               DType dtype) {
  std::string native = source_.native_name(hf_name);
  FS_CHECK(source_.contains(native), kFormat, "model '", source_.path(), "' has no tensor '",
           native, "'", native == hf_name ? "" : " (" + hf_name + ")");
  Shape stored = source_.shape(native);
  FS_CHECK(stored == shape, kFormat, "model '", source_.path(), "': tensor '", native,
           "' has shape ", shape_to_string(stored), " but the config implies ",
           shape_to_string(shape));
  DType from = source_.dtype(native);
  std::span<const std::byte> bytes = source_.bytes(native);
  std::vector<std::byte> out;
  try {
    out = convert_values(bytes, from, dtype, shape_numel(shape));
  } catch (const Error& e) {
    throw_error(e.category(), "model '", source_.path(), "': tensor '", native, "': ", e.message());
  }
  report(native, bytes.size());
  return out;
}

Tensor WeightLoader::load(const std::string& hf_name, const Shape& shape, DType dtype) {
  std::vector<std::byte> bytes = converted(hf_name, shape, dtype);
  return Tensor::from_host(bytes.data(), bytes.size(), shape, dtype, device_);
}

Tensor WeightLoader::load_rows(const std::vector<std::string>& hf_names,
                               const std::vector<Shape>& shapes, DType dtype) {
  FS_ASSERT(hf_names.size() == shapes.size() && !shapes.empty());
  std::vector<std::byte> all;
  Shape stacked = shapes[0];
  stacked[0] = 0;
  for (size_t i = 0; i < hf_names.size(); ++i) {
    FS_ASSERT(shapes[i].size() == stacked.size() &&
              std::equal(shapes[i].begin() + 1, shapes[i].end(), stacked.begin() + 1));
    std::vector<std::byte> part = converted(hf_names[i], shapes[i], dtype);
    all.insert(all.end(), part.begin(), part.end());
    stacked[0] += shapes[i][0];
  }
  return Tensor::from_host(all.data(), all.size(), stacked, dtype, device_);
}

std::vector<double> WeightLoader::load_native_values(const std::string& name) {
  FS_CHECK(source_.contains(name), kFormat, "model '", source_.path(), "' has no tensor '", name,
           "'");
  DType from = source_.dtype(name);
  int64_t count = shape_numel(source_.shape(name));
  std::vector<std::byte> bytes = convert_values(source_.bytes(name), from, DType::kF64, count);
  std::vector<double> values(static_cast<size_t>(count));
  std::memcpy(values.data(), bytes.data(), bytes.size());
  report(name, source_.bytes(name).size());
  return values;
}

}  // namespace flagstone::engine::detail
