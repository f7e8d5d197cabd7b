// Model conversion between formats: a Hugging Face folder to one GGUF file (llama.cpp's tensor
// names, metadata keys and q/k row order) and a GGUF file back to a safetensors folder.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "flagstone/base/dtype.h"

namespace flagstone::engine::format {

// Called after each tensor is written: its GGUF/HF name, tensors done, tensors in all.
using ConvertProgress = std::function<void(const std::string& tensor, size_t done, size_t total)>;

struct HfToGgufOptions {
  // f32, f16, bf16, q8_0, q4_0, q4_k or q6_k. Norms, biases and rope factors stay f32, as in
  // llama.cpp; matrices whose rows are not whole 32-value blocks fall back to f16 (not whole
  // 256-value super-blocks: q8_0, for the K types); the output projection (or the tied
  // embedding), the most sensitive matrix, is written as q8_0 with q4_0 and as q6_k with q4_k
  // (llama.cpp's Q4_K_M).
  DType type = DType::kF16;
  std::string name;  // general.name; defaults to the folder's name
  ConvertProgress progress;
};

// Converts the model in `hf_folder` (config.json + safetensors) to `gguf_path`. Supports the
// llama, mistral (written as llama), qwen2 and qwen3 families; kUnsupported names anything else.
// When the folder has tokenizer.json, the tokenizer (and chat template) is embedded as
// tokenizer.ggml.* metadata (see gguf_tokenizer_data_from_folder).
void convert_hf_to_gguf(const std::string& hf_folder, const std::string& gguf_path,
                        const HfToGgufOptions& options = {});

struct GgufToHfOptions {
  // Type of tensors stored quantized in the GGUF file: f32, f16 or bf16. Plain float tensors keep
  // their type.
  DType dequantize_to = DType::kF32;
  ConvertProgress progress;
};

// Writes `out_folder`/model.safetensors and config.json from a GGUF file.
void convert_gguf_to_hf(const std::string& gguf_path, const std::string& out_folder,
                        const GgufToHfOptions& options = {});

// Tensor names: HF "model.layers.3.self_attn.q_proj.weight" <-> GGUF "blk.3.attn_q.weight".
// Returns "" for tensors conversion drops (rotary inv_freq buffers); kUnsupported for unknown
// names.
std::string gguf_tensor_name(std::string_view hf_name);
std::string hf_tensor_name(std::string_view gguf_name);

// llama.cpp stores the q and k projections of llama-family models with the two halves of each
// head's rotary pairs interleaved (rows i and i + head_dim/2 become rows 2i and 2i + 1). These
// permute the rows of a [heads * head_dim, ...] matrix or bias; `row_bytes` is one row's size.
void interleave_rope_rows(const std::byte* src, std::byte* dst, int64_t heads, int64_t head_dim,
                          size_t row_bytes);
void deinterleave_rope_rows(const std::byte* src, std::byte* dst, int64_t heads, int64_t head_dim,
                            size_t row_bytes);

}  // namespace flagstone::engine::format
