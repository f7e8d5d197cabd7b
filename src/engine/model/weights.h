// Weight sources of the model loader: one interface over safetensors folders and GGUF files
// (by Hugging Face tensor names), host-side dtype conversion, and uploads with progress.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "flagstone/engine/format/gguf.h"
#include "flagstone/engine/format/safetensors.h"
#include "flagstone/engine/model/model.h"

namespace flagstone::engine::detail {

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual WeightFormat format() const = 0;
  virtual const std::string& path() const = 0;
  // The file's own name of a Hugging Face tensor name ("blk.0.attn_q.weight" in GGUF).
  virtual std::string native_name(const std::string& hf_name) const = 0;
  // These take native names.
  virtual bool contains(const std::string& name) const = 0;
  // kUnsupported naming the tensor when its stored type has no Flagstone dtype.
  virtual DType dtype(const std::string& name) const = 0;
  virtual Shape shape(const std::string& name) const = 0;
  virtual std::span<const std::byte> bytes(const std::string& name) const = 0;
};

std::unique_ptr<WeightSource> open_safetensors_source(const std::string& path);
std::unique_ptr<WeightSource> open_gguf_source(const format::GgufFile& file);

// Converts `count` values stored as `from` into `to` (f64, f32, f16, bf16, or `from` itself),
// dequantizing block types; kUnsupported for other pairs.
std::vector<std::byte> convert_values(std::span<const std::byte> src, DType from, DType to,
                                      int64_t count);

// Loads tensors by Hugging Face name onto a device, checking shapes, converting dtypes and
// reporting progress over the tensors announced with plan().
class WeightLoader {
 public:
  WeightLoader(const WeightSource& source, const Device& device,
               std::function<void(const LoadProgress&)> progress);

  bool contains(const std::string& hf_name) const;
  // Announces the tensors that will be loaded, for progress totals (missing ones are skipped).
  void plan(const std::vector<std::string>& hf_names);
  DType stored_dtype(const std::string& hf_name) const;
  // `shape` is the expected one; kFormat naming the file, tensor, and both shapes otherwise;
  // kFormat naming the tensor when it is missing.
  Tensor load(const std::string& hf_name, const Shape& shape, DType dtype);
  // Tensors stacked along dim 0 (fused q/k/v or gate/up matrices, fused biases); all but the
  // first dimension must agree.
  Tensor load_rows(const std::vector<std::string>& hf_names, const std::vector<Shape>& shapes,
                   DType dtype);
  // A tensor by its native name (GGUF rope_freqs.weight), as f64 values.
  std::vector<double> load_native_values(const std::string& name);

 private:
  std::vector<std::byte> converted(const std::string& hf_name, const Shape& shape, DType dtype);
  void report(const std::string& name, uint64_t bytes);

  const WeightSource& source_;
  Device device_;
  std::function<void(const LoadProgress&)> progress_;
  LoadProgress state_;
};

}  // namespace flagstone::engine::detail
