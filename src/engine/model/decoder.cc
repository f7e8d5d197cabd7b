// The shared decoder: weight loading (fusing q/k/v and gate/up into one matrix each so a layer
// runs four matrix products), rope tables, and the forward pass over the KV cache.
#include "decoder.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>

namespace flagstone::engine::detail {
namespace {

constexpr int64_t kDefaultMaxContext = 8192;

std::string layer_name(int64_t layer, const char* rest) {
  return "model.layers." + std::to_string(layer) + "." + rest;
}

DType default_dtype(const Device& device, const ModelConfig& config) {
  // The cpu and OpenCL paths compute in f32; GPUs use the checkpoint's 16-bit type.
  if (device.is_cpu() || device.backend() == "opencl") return DType::kF32;
  if (config.torch_dtype == "float16") return DType::kF16;
  if (config.torch_dtype == "float32") return DType::kF32;
  return DType::kBF16;
}

// The ops' name of a rope scaling type; dynamic NTK equals plain rope within the original
// context, which max_context never exceeds.
std::string rope_scaling_name(const ModelConfig& config) {
  const std::string& type = config.rope_scaling.type;
  if (type.empty() || type == "dynamic") return "none";
  if (type == "linear" || type == "llama3") return type;
  throw_error(ErrorCategory::kUnsupported, "config '", config.source, "': rope_scaling type '",
              type, "' is not supported (linear, dynamic and llama3 are)");
}

}  // namespace

DecoderModel::DecoderModel(const WeightSource& source, ModelConfig config, const Architecture& arch,
                           const ModelOptions& options)
    : config_(std::move(config)),
      ops_(options.reference),
      graphs_(options.graphs),
      describe_graph_(options.describe_graph) {
  traits_ = arch.traits(config_, source.format());
  device_ = options.reference ? Device() : options.device;
  dtype_ =
      options.reference ? DType::kF64 : options.dtype.value_or(default_dtype(device_, config_));
  FS_CHECK(is_floating(dtype_), kInvalidArgument, "model dtype must be a float type, got ",
           dtype_name(dtype_));
  hidden_ = config_.hidden_size;
  heads_ = config_.num_attention_heads;
  kv_heads_ = config_.num_key_value_heads;
  head_dim_ = config_.head_dim;
  intermediate_ = config_.intermediate_size;
  vocab_ = config_.vocab_size;
  FS_CHECK(head_dim_ % 2 == 0, kFormat, "config '", config_.source, "': head_dim ", head_dim_,
           " must be even for rotary embeddings");

  info_.path = source.path();
  info_.format = source.format() == WeightFormat::kGguf ? "gguf" : "safetensors";
  info_.architecture = arch.name;
  info_.device = device_;
  info_.dtype = dtype_;
  info_.reference = options.reference;
#ifdef FLAGSTONE_HAVE_CUDA
  info_.decode_graph = graphs_ && !options.reference && device_.backend() == "cuda" &&
                       runtime::Graph::supported(device_);
#endif
  int64_t limit =
      config_.max_position_embeddings > 0 ? config_.max_position_embeddings : kDefaultMaxContext;
  info_.max_context =
      options.max_context > 0 ? options.max_context : std::min(limit, kDefaultMaxContext);
  if (config_.rope_scaling.type == "dynamic") {
    info_.max_context = std::min(info_.max_context, limit);
  }
  load_weights(source, options);
  describe_weights();
  positions_ = ops::arange(info_.max_context, device_).reshape({1, info_.max_context});
}

DType DecoderModel::matrix_dtype(const WeightLoader& loader, const std::vector<std::string>& names,
                                 bool keep_quantized) const {
  if (ops_.reference() || !keep_quantized) return dtype_;
  DType first = loader.stored_dtype(names[0]);
  if (first != DType::kQ8_0 && first != DType::kQ4_0) return dtype_;
  for (const std::string& name : names) {
    if (loader.stored_dtype(name) != first) return dtype_;
  }
  return first;
}

void DecoderModel::load_weights(const WeightSource& source, const ModelOptions& options) {
  WeightLoader loader(source, device_, options.progress);
  const int64_t h = hidden_, d = head_dim_, q_rows = heads_ * d, kv_rows = kv_heads_ * d;
  const std::string embed_name = "model.embed_tokens.weight";
  bool tied = !loader.contains("lm_head.weight");
  FS_CHECK(!tied || config_.tie_word_embeddings || source.format() == WeightFormat::kGguf, kFormat,
           "model '", source.path(),
           "' has no lm_head.weight and its config does not tie word embeddings");

  std::vector<std::string> names{embed_name, "model.norm.weight"};
  if (!tied) names.push_back("lm_head.weight");
  const char* per_layer[] = {"input_layernorm.weight",  "post_attention_layernorm.weight",
                             "self_attn.q_proj.weight", "self_attn.k_proj.weight",
                             "self_attn.v_proj.weight", "self_attn.o_proj.weight",
                             "mlp.gate_proj.weight",    "mlp.up_proj.weight",
                             "mlp.down_proj.weight"};
  const char* biases[] = {"self_attn.q_proj.bias", "self_attn.k_proj.bias",
                          "self_attn.v_proj.bias"};
  const char* norms[] = {"self_attn.q_norm.weight", "self_attn.k_norm.weight"};
  for (int64_t l = 0; l < config_.num_hidden_layers; ++l) {
    for (const char* n : per_layer) names.push_back(layer_name(l, n));
    if (traits_.attention_bias)
      for (const char* n : biases) names.push_back(layer_name(l, n));
    if (traits_.qk_norm)
      for (const char* n : norms) names.push_back(layer_name(l, n));
  }
  loader.plan(names);

  embed_ = loader.load(embed_name, {vocab_, h}, dtype_);
  layers_.resize(static_cast<size_t>(config_.num_hidden_layers));
  for (int64_t l = 0; l < config_.num_hidden_layers; ++l) {
    Layer& layer = layers_[l];
    auto name = [&](const char* rest) { return layer_name(l, rest); };
    layer.input_norm = loader.load(name("input_layernorm.weight"), {h}, dtype_);
    std::vector<std::string> qkv{name("self_attn.q_proj.weight"), name("self_attn.k_proj.weight"),
                                 name("self_attn.v_proj.weight")};
    layer.qkv = loader.load_rows(qkv, {{q_rows, h}, {kv_rows, h}, {kv_rows, h}},
                                 matrix_dtype(loader, qkv, options.keep_quantized));
    if (traits_.attention_bias) {
      layer.qkv_bias = loader.load_rows({name(biases[0]), name(biases[1]), name(biases[2])},
                                        {{q_rows}, {kv_rows}, {kv_rows}}, dtype_);
    }
    if (traits_.qk_norm) {
      layer.q_norm = loader.load(name(norms[0]), {d}, dtype_);
      layer.k_norm = loader.load(name(norms[1]), {d}, dtype_);
    }
    std::vector<std::string> o{name("self_attn.o_proj.weight")};
    layer.o = loader.load(o[0], {h, q_rows}, matrix_dtype(loader, o, options.keep_quantized));
    layer.post_norm = loader.load(name("post_attention_layernorm.weight"), {h}, dtype_);
    std::vector<std::string> gate_up{name("mlp.gate_proj.weight"), name("mlp.up_proj.weight")};
    layer.gate_up = loader.load_rows(gate_up, {{intermediate_, h}, {intermediate_, h}},
                                     matrix_dtype(loader, gate_up, options.keep_quantized));
    std::vector<std::string> down{name("mlp.down_proj.weight")};
    layer.down = loader.load(down[0], {h, intermediate_},
                             matrix_dtype(loader, down, options.keep_quantized));
  }
  final_norm_ = loader.load("model.norm.weight", {h}, dtype_);
  std::string head_name = tied ? embed_name : "lm_head.weight";
  DType head_dtype = matrix_dtype(loader, {head_name}, options.keep_quantized);
  // A tied head shares the embedding unless it stays quantized (the embedding cannot).
  lm_head_ =
      tied && head_dtype == dtype_ ? embed_ : loader.load(head_name, {vocab_, h}, head_dtype);
  build_rope(loader);
}

void DecoderModel::build_rope(WeightLoader& loader) {
  const int64_t n = info_.max_context, half = head_dim_ / 2;
  if (config_.rope_scaling.type == "rope_freqs") {
    // llama.cpp's precomputed llama3 divisors: built here, rounding as the rope_cache op does.
    std::vector<double> factors = loader.load_native_values("rope_freqs.weight");
    FS_CHECK(static_cast<int64_t>(factors.size()) == half, kFormat, "model '", info_.path,
             "': rope_freqs.weight has ", factors.size(), " values; head_dim/2 is ", half);
    std::vector<double> cos(static_cast<size_t>(n * half)), sin(cos.size());
    for (int64_t i = 0; i < half; ++i) {
      double inv = 1.0 / std::pow(config_.rope_theta,
                                  2.0 * static_cast<double>(i) / static_cast<double>(head_dim_));
      auto freq = static_cast<float>(inv / factors[i]);
      for (int64_t t = 0; t < n; ++t) {
        double angle = static_cast<float>(static_cast<double>(t) * freq);
        cos[t * half + i] = std::cos(angle);
        sin[t * half + i] = std::sin(angle);
      }
    }
    rope_cos_ = ops::cast(Tensor::from_vector(cos, {n, half}), dtype_).to(device_);
    rope_sin_ = ops::cast(Tensor::from_vector(sin, {n, half}), dtype_).to(device_);
    return;
  }
  ops::Attrs attrs{
      {"max_positions", n},
      {"rotary_dim", head_dim_},
      {"base", config_.rope_theta},
      {"scaling", rope_scaling_name(config_)},
      {"factor", config_.rope_scaling.factor},
      {"original_max_positions", config_.rope_scaling.original_max_position_embeddings},
      {"low_freq_factor", config_.rope_scaling.low_freq_factor},
      {"high_freq_factor", config_.rope_scaling.high_freq_factor},
      {"dtype", std::string(dtype_name(dtype_))},
      {"device", device_.spec()}};
  auto tables = ops_.reference() ? ops::call_reference("rope_cache", {}, attrs)
                                 : ops::call("rope_cache", {}, attrs);
  rope_cos_ = tables[0];
  rope_sin_ = tables[1];
}

void DecoderModel::describe_weights() {
  std::map<std::string, int> counts;
  std::vector<const Tensor*> all{&embed_, &final_norm_};
  if (lm_head_.buffer().handle() != embed_.buffer().handle()) all.push_back(&lm_head_);
  for (const Layer& l : layers_) {
    for (const Tensor* t : {&l.input_norm, &l.post_norm, &l.qkv, &l.qkv_bias, &l.q_norm, &l.k_norm,
                            &l.o, &l.gate_up, &l.down})
      if (t->defined()) all.push_back(t);
  }
  for (const Tensor* t : all) {
    info_.parameters += t->numel();
    info_.weight_bytes += t->nbytes();
    ++counts[std::string(dtype_name(t->dtype()))];
    if (t != &embed_) info_.bytes_per_token += t->nbytes();
    if (t->dim() == 2 && t != &embed_) info_.matmul_parameters += t->numel();
  }
  // A tied head is the embedding itself: read whole for the logits, and a matrix product.
  if (lm_head_.buffer().handle() == embed_.buffer().handle()) {
    info_.bytes_per_token += embed_.nbytes();
    info_.matmul_parameters += embed_.numel();
  } else {
    info_.bytes_per_token += embed_.nbytes() / static_cast<uint64_t>(vocab_);
  }
  std::ostringstream types;
  for (const auto& [name, count] : counts) {
    types << (types.tellp() > 0 ? ", " : "") << name << " x " << count;
  }
  info_.weight_types = types.str();
}

KvCache DecoderModel::new_cache(int64_t batch, int64_t capacity) const {
  FS_CHECK(batch > 0, kInvalidArgument, "KV cache batch must be positive, got ", batch);
  if (capacity <= 0) capacity = info_.max_context;
  FS_CHECK(capacity <= info_.max_context, kInvalidArgument, "KV cache of ", capacity,
           " positions exceeds the model's max_context ", info_.max_context);
  return KvCache(config_.num_hidden_layers, batch, kv_heads_, capacity, head_dim_, dtype_, device_);
}

Tensor DecoderModel::attention(int64_t l, const Tensor& h, const Tensor& positions,
                               const Tensor& mask, KvCache& cache, int64_t start) {
  const Layer& layer = layers_[l];
  const int64_t b = h.size(0), t = h.size(1), d = head_dim_;
  Tensor qkv = ops_.linear(h, layer.qkv, layer.qkv_bias);
  Tensor q = qkv.narrow(2, 0, heads_ * d).reshape({b, t, heads_, d});
  Tensor k = qkv.narrow(2, heads_ * d, kv_heads_ * d).reshape({b, t, kv_heads_, d});
  Tensor v = qkv.narrow(2, (heads_ + kv_heads_) * d, kv_heads_ * d).reshape({b, t, kv_heads_, d});
  if (traits_.qk_norm) {
    q = ops_.rms_norm(q, layer.q_norm, config_.rms_norm_eps);
    k = ops_.rms_norm(k, layer.k_norm, config_.rms_norm_eps);
  }
  q = ops_.rotary(q, positions, rope_cos_, rope_sin_, traits_.rope_style);
  k = ops_.rotary(k, positions, rope_cos_, rope_sin_, traits_.rope_style);
  cache.keys(l).narrow(1, start, t).copy_(k);
  cache.values(l).narrow(1, start, t).copy_(v);
  Tensor keys = cache.keys(l).narrow(1, 0, start + t).permute({0, 2, 1, 3});
  Tensor values = cache.values(l).narrow(1, 0, start + t).permute({0, 2, 1, 3});
  Tensor out =
      ops_.attention(q.permute({0, 2, 1, 3}), keys, values, mask, !mask.defined() && t > 1);
  out = out.permute({0, 2, 1, 3}).reshape({b, t, heads_ * d});
  return ops_.linear(out, layer.o);
}

void DecoderModel::check_forward(const Tensor& tokens_in, const KvCache& cache) const {
  FS_CHECK(tokens_in.dim() == 2 && tokens_in.size(1) > 0, kInvalidArgument,
           "model forward: tokens ", tokens_in.describe(), " must be [batch, count>0]");
  FS_CHECK(tokens_in.dtype() == DType::kI64 || tokens_in.dtype() == DType::kI32, kInvalidArgument,
           "model forward: tokens ", tokens_in.describe(), " must be i64 or i32");
  const int64_t b = tokens_in.size(0), t = tokens_in.size(1), start = cache.length();
  FS_CHECK(cache.batch() == b && cache.layers() == config_.num_hidden_layers &&
               cache.dtype() == dtype_ && cache.device() == device_,
           kInvalidArgument, "model forward: the KV cache (batch ", cache.batch(), ", ",
           cache.layers(), " layers, ", dtype_name(cache.dtype()), " on ", cache.device().spec(),
           ") was not made by this model for a batch of ", b);
  FS_CHECK(start + t <= cache.capacity(), kInvalidArgument, "model forward: ", t,
           " more tokens after ", start, " exceed the KV cache's ", cache.capacity(),
           " positions (the context is full)");
}

Tensor DecoderModel::forward(const Tensor& tokens_in, KvCache& cache, bool all_logits) {
  check_forward(tokens_in, cache);
  const int64_t b = tokens_in.size(0), t = tokens_in.size(1), start = cache.length();
  if (t == 1 && decode_on_device(cache)) return decode(tokens_in, cache);
  Tensor tokens = tokens_in.device() == device_ ? tokens_in : tokens_in.to(device_);

  // A view of the position table made at load: a decode step copies nothing from the host.
  Tensor positions = positions_.narrow(1, start, t);
  if (b > 1) positions = positions.expand({b, t}).contiguous();
  Tensor mask;
  if (traits_.sliding_window && start + t > *traits_.sliding_window) {
    // Query i (at start + i) sees keys j with start + i - window < j <= start + i.
    const int64_t window = *traits_.sliding_window, n = start + t;
    std::vector<uint8_t> allowed(static_cast<size_t>(t * n));
    for (int64_t i = 0; i < t; ++i)
      for (int64_t j = 0; j < n; ++j) allowed[i * n + j] = j <= start + i && j > start + i - window;
    mask = Tensor::from_host(allowed.data(), allowed.size(), {1, 1, t, n}, DType::kBool, device_);
  }

  Tensor x = ops_.embedding(tokens, embed_);
  Tensor residual = x, h, mlp_out;
  for (int64_t l = 0; l < static_cast<int64_t>(layers_.size()); ++l) {
    const Layer& layer = layers_[l];
    if (l == 0) {
      h = ops_.rms_norm(x, layer.input_norm, config_.rms_norm_eps);
    } else {
      std::tie(h, residual) =
          ops_.add_rms_norm(mlp_out, residual, layer.input_norm, config_.rms_norm_eps);
    }
    Tensor attn = attention(l, h, positions, mask, cache, start);
    std::tie(h, residual) =
        ops_.add_rms_norm(attn, residual, layer.post_norm, config_.rms_norm_eps);
    mlp_out = ops_.linear(ops_.silu_and_mul(ops_.linear(h, layer.gate_up)), layer.down);
  }
  h = ops_.add_rms_norm(mlp_out, residual, final_norm_, config_.rms_norm_eps).first;
  if (!all_logits) h = h.narrow(1, t - 1, 1);
  Tensor logits = ops_.linear(h, lm_head_);
  cache.advance(t);
  return logits;
}

}  // namespace flagstone::engine::detail
