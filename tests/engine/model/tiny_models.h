// Tiny random models of every architecture written in the real formats (a Hugging Face folder
// with config.json and safetensors, and GGUF through the converter), for the engine's tests.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "flagstone/base/dtype.h"
#include "flagstone/engine/model/model.h"

namespace flagstone::engine::testing {

// The variants: "llama" (Llama 2 style), "llama3" (llama3 rope scaling, tied embeddings),
// "mistral" (sliding window of 8), "qwen2" (q/k/v bias, tied), "qwen3" (q/k norm, head_dim 32).
const std::vector<std::string>& tiny_variants();
constexpr int64_t kTinyVocab = 256;

// A folder under the system temp dir, removed when the object goes away.
class ScratchFolder {
 public:
  explicit ScratchFolder(const std::string& tag);
  ~ScratchFolder();
  ScratchFolder(const ScratchFolder&) = delete;
  ScratchFolder& operator=(const ScratchFolder&) = delete;
  const std::string& path() const { return path_; }
  // The folder `name` inside it, created (one tiny model each).
  std::string sub(const std::string& name) const;

 private:
  std::string path_;
};

struct TinyOptions {
  uint64_t seed = 7;
  DType dtype = DType::kF32;  // how weights are stored: f32, f16 or bf16
  // false leaves mistral's window out (GGUF's llama architecture has none).
  bool sliding_window = true;
  int64_t vocab = kTinyVocab;
  // 256 and a multiple of 256 make every matrix row whole K-quant super-blocks.
  int64_t hidden = 64;
  int64_t intermediate = 160;
  int64_t max_positions = 128;  // max_position_embeddings: the longest KV cache it allows
  int64_t heads = 4, kv_heads = 2;
};
// Writes `folder`/config.json, generation_config.json and model.safetensors with random
// weights. Returns `folder`.
std::string write_tiny_hf_model(const std::string& folder, const std::string& variant,
                                const TinyOptions& options = {});
// A llama model sized to the test tokenizer (tests/data/tokenizer/spm, 900 pieces, with a chat
// template), with that tokenizer's files copied in: a complete model folder for the CLI.
// `hidden` 256 gives rows of whole K-quant super-blocks (intermediate is then 2 x hidden).
std::string write_tiny_chat_model(const std::string& folder, uint64_t seed = 7,
                                  int64_t hidden = 64);

// Converts the folder to `gguf_path` with weights of `type` (f32, f16, q8_0, q4_0).
std::string write_tiny_gguf_model(const std::string& hf_folder, const std::string& gguf_path,
                                  DType type);

// write_tiny_gguf_model of a write_tiny_chat_model folder, plus the test tokenizer's
// vocabulary (tokenizer.ggml.*) and chat template, as llama.cpp's converter embeds them.
std::string write_tiny_chat_gguf(const std::string& hf_folder, const std::string& gguf_path,
                                 DType type);

// Token ids of a test prompt of `length` (starting with BOS = 1).
std::vector<TokenId> tiny_prompt(int64_t length, uint64_t seed = 3);

// ||a - b|| / ||b|| over all elements.
double relative_error(const std::vector<double>& a, const std::vector<double>& b);

}  // namespace flagstone::engine::testing
