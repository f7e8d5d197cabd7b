// Conversion between Hugging Face folders and GGUF, following llama.cpp's conventions so that
// files we write load in llama.cpp and files it writes load here.
#include "flagstone/engine/format/convert.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <numbers>

#include "flagstone/base/error.h"
#include "flagstone/engine/format/gguf.h"
#include "flagstone/engine/format/quant.h"
#include "flagstone/engine/format/safetensors.h"
#include "flagstone/engine/model_config.h"
#include "flagstone/engine/tokenizer/tokenizer.h"

namespace flagstone::engine::format {

namespace {

namespace fs = std::filesystem;

struct NamePair {
  std::string_view hf;
  std::string_view gguf;
};

constexpr NamePair kGlobalNames[] = {
    {"model.embed_tokens.weight", "token_embd.weight"},
    {"model.norm.weight", "output_norm.weight"},
    {"lm_head.weight", "output.weight"},
};

// Per-layer names, after "model.layers.N." and "blk.N.".
constexpr NamePair kLayerNames[] = {
    {"input_layernorm.weight", "attn_norm.weight"},
    {"post_attention_layernorm.weight", "ffn_norm.weight"},
    {"self_attn.q_proj.weight", "attn_q.weight"},
    {"self_attn.q_proj.bias", "attn_q.bias"},
    {"self_attn.k_proj.weight", "attn_k.weight"},
    {"self_attn.k_proj.bias", "attn_k.bias"},
    {"self_attn.v_proj.weight", "attn_v.weight"},
    {"self_attn.v_proj.bias", "attn_v.bias"},
    {"self_attn.o_proj.weight", "attn_output.weight"},
    {"self_attn.o_proj.bias", "attn_output.bias"},
    {"self_attn.q_norm.weight", "attn_q_norm.weight"},
    {"self_attn.k_norm.weight", "attn_k_norm.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"},
    {"mlp.up_proj.weight", "ffn_up.weight"},
    {"mlp.down_proj.weight", "ffn_down.weight"},
};

// Splits "<prefix><digits>.<rest>"; false when `name` does not have that form.
bool split_layer(std::string_view name, std::string_view prefix, int64_t* layer,
                 std::string_view* rest) {
  if (name.substr(0, prefix.size()) != prefix) return false;
  std::string_view tail = name.substr(prefix.size());
  size_t dot = tail.find('.');
  if (dot == std::string_view::npos || dot == 0) return false;
  auto [end, ec] = std::from_chars(tail.data(), tail.data() + dot, *layer);
  if (ec != std::errc() || end != tail.data() + dot) return false;
  *rest = tail.substr(dot + 1);
  return true;
}

// The GGUF architecture name of a Hugging Face model type.
std::string gguf_arch_of(const ModelConfig& config) {
  if (config.model_type == "llama" || config.model_type == "mistral") return "llama";
  if (config.model_type == "qwen2" || config.model_type == "qwen3") return config.model_type;
  throw_error(ErrorCategory::kUnsupported, "cannot convert model '", config.source,
              "' of model_type \"", config.model_type,
              "\" (supported: llama, mistral, qwen2, qwen3)");
}

// Heads of a q/k tensor that llama.cpp interleaves for llama-family models; 0 for others.
int64_t rope_heads(const std::string& arch, std::string_view gguf_name, const ModelConfig& c) {
  if (arch != "llama") return 0;
  auto ends_with = [&](std::string_view suffix) {
    return gguf_name.size() >= suffix.size() &&
           gguf_name.substr(gguf_name.size() - suffix.size()) == suffix;
  };
  if (ends_with(".attn_q.weight") || ends_with(".attn_q.bias")) return c.num_attention_heads;
  if (ends_with(".attn_k.weight") || ends_with(".attn_k.bias")) return c.num_key_value_heads;
  return 0;
}

uint32_t llama_file_type(DType type) {
  switch (type) {
    case DType::kF32:
      return 0;
    case DType::kF16:
      return 1;
    case DType::kQ4_0:
      return 2;
    case DType::kQ8_0:
      return 7;
    case DType::kBF16:
      return 32;
    case DType::kQ4_K:
      return 15;  // llama.cpp's MOSTLY_Q4_K_M: q4_k matrices with a q6_k output head
    case DType::kQ6_K:
      return 18;
    default:
      throw_error(ErrorCategory::kUnsupported, "conversion to ", dtype_name(type),
                  " is not supported (f32, f16, bf16, q8_0, q4_0, q4_k, q6_k are)");
  }
}

uint32_t to_u32(int64_t value, const char* key) {
  FS_CHECK(value >= 0 && value <= static_cast<int64_t>(UINT32_MAX), kInvalidArgument,
           "config value ", key, " = ", value, " does not fit the GGUF u32 field");
  return static_cast<uint32_t>(value);
}

// Reads a tensor as f32 from a possibly unaligned mapping.
std::vector<float> to_f32(DType dtype, std::span<const std::byte> bytes, int64_t numel) {
  std::vector<float> out(static_cast<size_t>(numel));
  dequantize(dtype, bytes.data(), out.data(), numel);
  return out;
}

void permute_rows(bool interleave, const std::byte* src, std::byte* dst, int64_t heads,
                  int64_t head_dim, size_t row_bytes) {
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t t = 0; t < 2; ++t) {
        int64_t hf_row = h * head_dim + t * half + i;
        int64_t gguf_row = h * head_dim + 2 * i + t;
        int64_t from = interleave ? hf_row : gguf_row;
        int64_t to = interleave ? gguf_row : hf_row;
        std::memcpy(dst + static_cast<size_t>(to) * row_bytes,
                    src + static_cast<size_t>(from) * row_bytes, row_bytes);
      }
    }
  }
}

// llama.cpp's llama3 rope: one divisor per rotary frequency, stored as rope_freqs.weight.
std::vector<float> llama3_rope_factors(const ModelConfig& c) {
  const RopeScaling& r = c.rope_scaling;
  const double old_context = static_cast<double>(r.original_max_position_embeddings);
  const double low_wavelen = old_context / r.low_freq_factor;
  const double high_wavelen = old_context / r.high_freq_factor;
  std::vector<float> factors;
  for (int64_t i = 0; i < c.head_dim; i += 2) {
    double freq = 1.0 / std::pow(c.rope_theta, static_cast<double>(i) / c.head_dim);
    double wavelen = 2.0 * std::numbers::pi / freq;
    if (wavelen < high_wavelen) {
      factors.push_back(1.0f);
    } else if (wavelen > low_wavelen) {
      factors.push_back(static_cast<float>(r.factor));
    } else {
      double smooth =
          (old_context / wavelen - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
      factors.push_back(static_cast<float>(1.0 / ((1.0 - smooth) / r.factor + smooth)));
    }
  }
  return factors;
}

// tokenizer.ggml.* keys in llama.cpp's order and types.
void set_gguf_tokenizer(GgufWriter& writer, const GgufTokenizerData& d) {
  auto id = [&](const char* key, const std::optional<int64_t>& value) {
    if (value) writer.set(key, GgufValue::scalar<uint32_t>(static_cast<uint32_t>(*value)));
  };
  auto flag = [&](const char* key, const std::optional<bool>& value) {
    if (value) writer.set(key, GgufValue::scalar<bool>(*value));
  };
  writer.set("tokenizer.ggml.model", GgufValue::string(d.model));
  if (!d.pre.empty()) writer.set("tokenizer.ggml.pre", GgufValue::string(d.pre));
  writer.set("tokenizer.ggml.tokens", GgufValue::string_array(d.tokens));
  if (!d.scores.empty()) writer.set("tokenizer.ggml.scores", GgufValue::array(d.scores));
  writer.set("tokenizer.ggml.token_type", GgufValue::array(d.token_types));
  if (!d.merges.empty()) writer.set("tokenizer.ggml.merges", GgufValue::string_array(d.merges));
  id("tokenizer.ggml.bos_token_id", d.bos_id);
  id("tokenizer.ggml.eos_token_id", d.eos_id);
  id("tokenizer.ggml.unknown_token_id", d.unk_id);
  id("tokenizer.ggml.padding_token_id", d.pad_id);
  id("tokenizer.ggml.eot_token_id", d.eot_id);
  flag("tokenizer.ggml.add_bos_token", d.add_bos_token);
  flag("tokenizer.ggml.add_eos_token", d.add_eos_token);
  flag("tokenizer.ggml.add_space_prefix", d.add_space_prefix);
  if (!d.chat_template.empty())
    writer.set("tokenizer.chat_template", GgufValue::string(d.chat_template));
}

// Sort key that writes tensors in llama.cpp's order: embeddings, layers in order, output.
std::pair<int64_t, std::string> gguf_order(const std::string& name) {
  int64_t layer = 0;
  std::string_view rest;
  if (name == "token_embd.weight" || name == "rope_freqs.weight") return {-1, name};
  if (split_layer(name, "blk.", &layer, &rest)) return {layer, name};
  return {INT64_MAX, name};
}

}  // namespace

std::string gguf_tensor_name(std::string_view hf_name) {
  for (const NamePair& pair : kGlobalNames) {
    if (pair.hf == hf_name) return std::string(pair.gguf);
  }
  int64_t layer = 0;
  std::string_view rest;
  if (split_layer(hf_name, "model.layers.", &layer, &rest)) {
    if (rest == "self_attn.rotary_emb.inv_freq") return "";
    for (const NamePair& pair : kLayerNames) {
      if (pair.hf == rest) return "blk." + std::to_string(layer) + "." + std::string(pair.gguf);
    }
  }
  throw_error(ErrorCategory::kUnsupported, "no GGUF name for tensor '", hf_name, "'");
}

std::string hf_tensor_name(std::string_view gguf_name) {
  for (const NamePair& pair : kGlobalNames) {
    if (pair.gguf == gguf_name) return std::string(pair.hf);
  }
  int64_t layer = 0;
  std::string_view rest;
  if (split_layer(gguf_name, "blk.", &layer, &rest)) {
    for (const NamePair& pair : kLayerNames) {
      if (pair.gguf == rest) {
        return "model.layers." + std::to_string(layer) + "." + std::string(pair.hf);
      }
    }
  }
  throw_error(ErrorCategory::kUnsupported, "no Hugging Face name for GGUF tensor '", gguf_name,
              "'");
}

void interleave_rope_rows(const std::byte* src, std::byte* dst, int64_t heads, int64_t head_dim,
                          size_t row_bytes) {
  permute_rows(true, src, dst, heads, head_dim, row_bytes);
}

void deinterleave_rope_rows(const std::byte* src, std::byte* dst, int64_t heads, int64_t head_dim,
                            size_t row_bytes) {
  permute_rows(false, src, dst, heads, head_dim, row_bytes);
}

void convert_hf_to_gguf(const std::string& hf_folder, const std::string& gguf_path,
                        const HfToGgufOptions& options) {
  const uint32_t file_type = llama_file_type(options.type);
  const ModelConfig config = load_hf_config(hf_folder);
  const std::string arch = gguf_arch_of(config);
  auto model = std::make_shared<const SafetensorsModel>(SafetensorsModel::open(hf_folder));

  GgufWriter writer;
  std::string name = options.name;
  if (name.empty()) name = fs::path(hf_folder).lexically_normal().filename().string();
  if (name.empty()) name = fs::path(hf_folder).lexically_normal().parent_path().filename().string();
  const std::string p = arch + ".";
  writer.set("general.architecture", GgufValue::string(arch));
  writer.set("general.name", GgufValue::string(name));
  writer.set("general.file_type", GgufValue::scalar<uint32_t>(file_type));
  if (is_quantized(options.type)) {
    writer.set("general.quantization_version", GgufValue::scalar<uint32_t>(2));
  }
  writer.set(p + "context_length", GgufValue::scalar<uint32_t>(to_u32(
                                       config.max_position_embeddings, "max_position_embeddings")));
  writer.set(p + "embedding_length",
             GgufValue::scalar<uint32_t>(to_u32(config.hidden_size, "hidden_size")));
  writer.set(p + "block_count",
             GgufValue::scalar<uint32_t>(to_u32(config.num_hidden_layers, "num_hidden_layers")));
  writer.set(p + "feed_forward_length",
             GgufValue::scalar<uint32_t>(to_u32(config.intermediate_size, "intermediate_size")));
  writer.set(p + "attention.head_count", GgufValue::scalar<uint32_t>(to_u32(
                                             config.num_attention_heads, "num_attention_heads")));
  writer.set(
      p + "attention.head_count_kv",
      GgufValue::scalar<uint32_t>(to_u32(config.num_key_value_heads, "num_key_value_heads")));
  writer.set(p + "attention.key_length",
             GgufValue::scalar<uint32_t>(to_u32(config.head_dim, "head_dim")));
  writer.set(p + "attention.value_length",
             GgufValue::scalar<uint32_t>(to_u32(config.head_dim, "head_dim")));
  writer.set(p + "rope.dimension_count",
             GgufValue::scalar<uint32_t>(to_u32(config.head_dim, "head_dim")));
  writer.set(p + "rope.freq_base", GgufValue::scalar<float>(static_cast<float>(config.rope_theta)));
  writer.set(p + "attention.layer_norm_rms_epsilon",
             GgufValue::scalar<float>(static_cast<float>(config.rms_norm_eps)));
  writer.set(p + "vocab_size",
             GgufValue::scalar<uint32_t>(to_u32(config.vocab_size, "vocab_size")));
  const RopeScaling& rope = config.rope_scaling;
  if (rope.type == "linear" || rope.type == "yarn") {
    writer.set(p + "rope.scaling.type", GgufValue::string(rope.type));
    writer.set(p + "rope.scaling.factor",
               GgufValue::scalar<float>(static_cast<float>(rope.factor)));
    if (rope.original_max_position_embeddings > 0) {
      writer.set(p + "rope.scaling.original_context_length",
                 GgufValue::scalar<uint32_t>(to_u32(rope.original_max_position_embeddings,
                                                    "original_max_position_embeddings")));
    }
  } else if (!rope.type.empty() && rope.type != "llama3") {
    throw_error(ErrorCategory::kUnsupported, "cannot convert '", config.source,
                "': rope_scaling type \"", rope.type, "\" has no GGUF form");
  }
  if (!rope.type.empty()) {
    // Exact HF parameters under Flagstone's own keys (llama.cpp ignores them), so that a
    // conversion back restores config.json's rope_scaling.
    writer.set("flagstone.rope_scaling.type", GgufValue::string(rope.type));
    writer.set("flagstone.rope_scaling.factor", GgufValue::scalar<double>(rope.factor));
    writer.set("flagstone.rope_scaling.low_freq_factor",
               GgufValue::scalar<double>(rope.low_freq_factor));
    writer.set("flagstone.rope_scaling.high_freq_factor",
               GgufValue::scalar<double>(rope.high_freq_factor));
    writer.set(
        "flagstone.rope_scaling.original_max_position_embeddings",
        GgufValue::scalar<uint64_t>(static_cast<uint64_t>(rope.original_max_position_embeddings)));
  }
  if (config.bos_token_id) {
    writer.set("tokenizer.ggml.bos_token_id",
               GgufValue::scalar<uint32_t>(to_u32(*config.bos_token_id, "bos_token_id")));
  }
  if (!config.eos_token_ids.empty()) {
    writer.set("tokenizer.ggml.eos_token_id",
               GgufValue::scalar<uint32_t>(to_u32(config.eos_token_ids[0], "eos_token_id")));
  }
  std::error_code exists_error;
  if (fs::exists(fs::path(hf_folder) / "tokenizer.json", exists_error)) {
    set_gguf_tokenizer(writer, gguf_tokenizer_data_from_folder(hf_folder));
  }

  struct Job {
    std::string hf;
    std::string gguf;
  };
  std::vector<Job> jobs;
  for (const std::string& hf : model->tensor_names()) {
    std::string gguf = gguf_tensor_name(hf);
    if (!gguf.empty()) jobs.push_back({hf, gguf});
  }
  std::sort(jobs.begin(), jobs.end(),
            [](const Job& a, const Job& b) { return gguf_order(a.gguf) < gguf_order(b.gguf); });
  const size_t total = jobs.size() + (rope.type == "llama3" ? 1 : 0);
  auto done = std::make_shared<size_t>(0);
  auto report = [progress = options.progress, done, total](const std::string& tensor) {
    ++*done;
    if (progress) progress(tensor, *done, total);
  };

  if (rope.type == "llama3") {
    std::vector<float> factors = llama3_rope_factors(config);
    int64_t count = static_cast<int64_t>(factors.size());
    writer.add_tensor_generated("rope_freqs.weight", ggml_type_of(DType::kF32), {count},
                                [factors, report]() {
                                  auto bytes = std::as_bytes(std::span(factors));
                                  report("rope_freqs.weight");
                                  return std::vector<std::byte>(bytes.begin(), bytes.end());
                                });
  }
  for (const Job& job : jobs) {
    const SafetensorsTensorInfo& info = model->info(job.hf);
    FS_CHECK(is_floating(info.dtype), kUnsupported, "tensor '", job.hf, "' of '", hf_folder,
             "' has dtype ", dtype_name(info.dtype), "; only float weights convert to GGUF");
    FS_CHECK(!info.shape.empty() && info.shape.size() <= 4, kUnsupported, "tensor '", job.hf,
             "' has shape ", shape_to_string(info.shape), "; GGUF holds 1 to 4 dimensions");
    DType target = options.type;
    const bool head = job.gguf == "output.weight" ||
                      (config.tie_word_embeddings && job.gguf == "token_embd.weight");
    if (info.shape.size() == 1) {
      target = DType::kF32;
    } else if (is_quantized(target) && info.shape.back() % kBlockQ8_0 != 0) {
      target = DType::kF16;
    } else if ((target == DType::kQ4_K || target == DType::kQ6_K) &&
               info.shape.back() % kBlockK != 0) {
      // Rows that are not whole 256-value super-blocks keep 8 bits, as llama.cpp falls back.
      target = DType::kQ8_0;
    } else if (target == DType::kQ4_K && head) {
      target = DType::kQ6_K;
    } else if (target == DType::kQ4_0 && head) {
      target = DType::kQ8_0;
    }
    const int64_t heads = rope_heads(arch, job.gguf, config);
    const int64_t rows = info.shape[0];
    if (heads > 0) {
      FS_CHECK(rows == heads * config.head_dim, kFormat, "tensor '", job.hf, "' of '", hf_folder,
               "' has ", rows, " rows, expected heads x head_dim = ", heads * config.head_dim);
    }
    const int64_t numel = shape_numel(info.shape);
    const DType source = info.dtype;
    const int64_t head_dim = config.head_dim;
    writer.add_tensor_generated(
        job.gguf, ggml_type_of(target), info.shape,
        [model, job, source, target, numel, heads, head_dim, rows, report]() {
          std::vector<float> values = to_f32(source, model->data(job.hf), numel);
          if (heads > 0) {
            std::vector<float> permuted(values.size());
            size_t row_bytes = static_cast<size_t>(numel / rows) * sizeof(float);
            interleave_rope_rows(reinterpret_cast<const std::byte*>(values.data()),
                                 reinterpret_cast<std::byte*>(permuted.data()), heads, head_dim,
                                 row_bytes);
            values.swap(permuted);
          }
          std::vector<std::byte> out = quantize(target, values.data(), numel);
          report(job.gguf);
          return out;
        });
  }
  writer.write(gguf_path);
}

void convert_gguf_to_hf(const std::string& gguf_path, const std::string& out_folder,
                        const GgufToHfOptions& options) {
  FS_CHECK(options.dequantize_to == DType::kF32 || options.dequantize_to == DType::kF16 ||
               options.dequantize_to == DType::kBF16,
           kInvalidArgument, "GGUF to safetensors: dequantize_to must be f32, f16 or bf16, not ",
           dtype_name(options.dequantize_to));
  auto file = std::make_shared<const GgufFile>(GgufFile::open(gguf_path));
  ModelConfig config = model_config_from_gguf(*file);
  const std::string arch = file->architecture();
  FS_CHECK(arch == "llama" || arch == "qwen2" || arch == "qwen3", kUnsupported, "GGUF file '",
           gguf_path, "' has architecture \"", arch, "\" (supported: llama, qwen2, qwen3)");
  if (const GgufValue* type = file->find("flagstone.rope_scaling.type")) {
    RopeScaling& rope = config.rope_scaling;
    rope.type = type->as_string();
    rope.factor = file->get_float("flagstone.rope_scaling.factor");
    rope.low_freq_factor = file->get_float("flagstone.rope_scaling.low_freq_factor");
    rope.high_freq_factor = file->get_float("flagstone.rope_scaling.high_freq_factor");
    rope.original_max_position_embeddings = static_cast<int64_t>(
        file->get_uint("flagstone.rope_scaling.original_max_position_embeddings"));
  }

  SafetensorsWriter writer;
  writer.set_metadata("format", "pt");
  std::vector<std::string> names;
  for (const GgufTensorInfo& info : file->tensors()) {
    if (info.name != "rope_freqs.weight") names.push_back(info.name);
  }
  const size_t total = names.size();
  auto done = std::make_shared<size_t>(0);
  for (const std::string& name : names) {
    const GgufTensorInfo& info = file->info(name);
    FS_CHECK(info.dtype.has_value(), kUnsupported, "tensor '", name, "' of GGUF file '", gguf_path,
             "' has GGML type ", ggml_type_info(info.ggml_type)->name,
             ", which Flagstone cannot dequantize");
    const DType source = *info.dtype;
    const DType target = is_quantized(source) ? options.dequantize_to : source;
    const int64_t heads = rope_heads(arch, name, config);
    const int64_t rows = info.shape.empty() ? 1 : info.shape[0];
    if (heads > 0) {
      FS_CHECK(rows == heads * config.head_dim, kFormat, "tensor '", name, "' of '", gguf_path,
               "' has ", rows, " rows, expected heads x head_dim = ", heads * config.head_dim);
    }
    const int64_t numel = shape_numel(info.shape);
    const int64_t head_dim = config.head_dim;
    writer.add_generated(hf_tensor_name(name), target, info.shape,
                         [file, name, source, target, numel, heads, head_dim, rows, done, total,
                          progress = options.progress]() {
                           std::span<const std::byte> raw = file->data(name);
                           std::vector<std::byte> out;
                           if (source == target) {
                             out.assign(raw.begin(), raw.end());
                           } else {
                             std::vector<float> values = to_f32(source, raw, numel);
                             out = quantize(target, values.data(), numel);
                           }
                           if (heads > 0) {
                             std::vector<std::byte> permuted(out.size());
                             deinterleave_rope_rows(out.data(), permuted.data(), heads, head_dim,
                                                    out.size() / static_cast<size_t>(rows));
                             out.swap(permuted);
                           }
                           ++*done;
                           if (progress) progress(name, *done, total);
                           return out;
                         });
  }
  std::error_code ec;
  fs::create_directories(out_folder, ec);
  FS_CHECK(!ec, kIo, "cannot create folder '", out_folder, "': ", ec.message());
  writer.write((fs::path(out_folder) / "model.safetensors").string());
  std::string json = config.to_hf_json();
  AtomicFileWriter config_out((fs::path(out_folder) / "config.json").string());
  config_out.write(json.data(), json.size());
  config_out.commit();
}

}  // namespace flagstone::engine::format
