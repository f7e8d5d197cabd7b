// The op cases of `flagstone bench ops`: model-shaped inputs per token count, and the bytes a
// memory-bound op must move (or the flops a GEMM or attention must do) to count GB/s and TFLOP/s.
#include "ops_cases.h"

#include <algorithm>
#include <cstdlib>

#include "flagstone/base/error.h"
#include "flagstone/ops/ops.h"

namespace flagstone::bench {
namespace {

struct OpInfo {
  const char* name;
  const char* registry_op;
};

constexpr OpInfo kOps[] = {
    {"add", "add"},
    {"mul", "mul"},
    {"silu_and_mul", "silu_and_mul"},
    {"softmax", "softmax"},
    {"rms_norm", "rms_norm"},
    {"layer_norm", "layer_norm"},
    {"rotary", "rotary_embedding"},
    {"cross_entropy", "cross_entropy"},
    {"mm", "mm"},
    {"linear", "linear"},
    {"attention", "scaled_dot_product_attention"},
};

std::string join_shape(const Shape& shape) {
  std::string out;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) out += 'x';
    out += std::to_string(shape[i]);
  }
  return out;
}

std::string trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string_view::npos ? std::string() : std::string(s.substr(b, e - b + 1));
}

std::vector<std::string> split_commas(std::string_view text) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    parts.push_back(trim(text.substr(start, comma - start)));
    start = comma + 1;
  }
  return parts;
}

// The shape of each case's main input; GEMMs give M x K x N.
Shape main_shape(std::string_view op, int64_t t, const ModelDims& d) {
  if (op == "add" || op == "mul" || op == "rms_norm" || op == "layer_norm") return {t, d.hidden};
  if (op == "silu_and_mul") return {t, 2 * d.ffn};
  if (op == "softmax" || op == "cross_entropy") return {t, d.vocab};
  if (op == "rotary") return {t, d.heads, d.head_dim};
  if (op == "mm") return {t, d.hidden, d.hidden};
  if (op == "linear") return {t, d.hidden, d.ffn};
  return {1, d.heads, t, d.head_dim};  // attention
}

}  // namespace

const std::vector<std::string>& bench_op_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const OpInfo& info : kOps) n.push_back(info.name);
    return n;
  }();
  return names;
}

std::string registry_op_of(std::string_view bench_op) {
  for (const OpInfo& info : kOps)
    if (bench_op == info.name) return info.registry_op;
  std::string known;
  for (const OpInfo& info : kOps) {
    if (!known.empty()) known += ' ';
    known += info.name;
  }
  throw_error(ErrorCategory::kInvalidArgument, "bench ops: unknown op '", bench_op,
              "' (known: ", known, ")");
}

std::vector<std::string> parse_op_list(std::string_view text) {
  std::vector<std::string> ops;
  for (const std::string& part : split_commas(text)) {
    FS_CHECK(!part.empty(), kInvalidArgument, "bench ops: empty entry in --ops '", text, "'");
    if (part == "all") {
      for (const std::string& name : bench_op_names())
        if (std::find(ops.begin(), ops.end(), name) == ops.end()) ops.push_back(name);
      continue;
    }
    std::string name = part;
    if (name == "rotary_embedding") name = "rotary";
    if (name == "sdpa" || name == "scaled_dot_product_attention") name = "attention";
    registry_op_of(name);  // validates
    if (std::find(ops.begin(), ops.end(), name) == ops.end()) ops.push_back(name);
  }
  return ops;
}

std::vector<int64_t> parse_sizes(std::string_view text) {
  std::vector<int64_t> sizes;
  for (const std::string& part : split_commas(text)) {
    FS_CHECK(!part.empty(), kInvalidArgument, "bench ops: empty entry in --sizes '", text, "'");
    char* end = nullptr;
    long long value = std::strtoll(part.c_str(), &end, 10);
    std::string unit = end ? std::string(end) : std::string();
    int64_t scale = 1;
    if (unit == "k" || unit == "K")
      scale = 1024;
    else
      FS_CHECK(unit.empty() && end != part.c_str(), kInvalidArgument, "bench ops: size '", part,
               "' is not a token count (a positive integer, optionally with a k suffix)");
    FS_CHECK(value > 0 && value <= (int64_t{1} << 24), kInvalidArgument, "bench ops: size '", part,
             "' must be between 1 and 16M tokens");
    sizes.push_back(value * scale);
  }
  return sizes;
}

std::vector<int64_t> default_sizes(std::string_view op, bool on_cpu) {
  if (!on_cpu) return {1024, 8192};
  // The cpu is slower by orders of magnitude: keep a run of every op within a minute, while the
  // large memory-bound sizes still exceed the last-level cache.
  if (op == "mm" || op == "linear") return {128, 1024};
  if (op == "attention" || op == "softmax" || op == "cross_entropy") return {256, 1024};
  return {256, 4096};
}

DType resolve_dtype(std::string_view text, bool on_cpu) {
  if (text == "auto") return on_cpu ? DType::kF32 : DType::kBF16;
  DType d = parse_dtype(text);
  FS_CHECK(d == DType::kF32 || d == DType::kF16 || d == DType::kBF16, kInvalidArgument,
           "bench ops: --dtype ", text, " is not one of f32, f16, bf16");
  return d;
}

OpsBenchRow describe_case(std::string_view op, int64_t t, const ModelDims& d,
                          std::string_view dtype) {
  registry_op_of(op);
  FS_CHECK(t > 0, kInvalidArgument, "bench ops: op '", op, "' needs at least 1 token, got ", t);
  FS_CHECK(d.hidden > 0 && d.ffn > 0 && d.heads > 0 && d.head_dim > 0 && d.head_dim % 2 == 0 &&
               d.vocab > 0,
           kInvalidArgument,
           "bench ops: model dims must be positive (and head_dim even), got hidden=", d.hidden,
           " ffn=", d.ffn, " heads=", d.heads, " head_dim=", d.head_dim, " vocab=", d.vocab);
  OpsBenchRow row;
  row.op = std::string(op);
  row.tokens = t;
  row.dtype = std::string(dtype);
  row.shape = join_shape(main_shape(op, t, d));
  double es = static_cast<double>(dtype_size(parse_dtype(dtype)));
  double T = static_cast<double>(t), H = static_cast<double>(d.hidden);
  double F = static_cast<double>(d.ffn), V = static_cast<double>(d.vocab);
  double heads = static_cast<double>(d.heads), hd = static_cast<double>(d.head_dim);
  if (op == "add" || op == "mul") {
    row.bytes = 3 * T * H * es;
  } else if (op == "silu_and_mul") {
    row.bytes = 3 * T * F * es;  // gate and up read, product written
  } else if (op == "softmax") {
    row.bytes = 2 * T * V * es;
  } else if (op == "rms_norm") {
    row.bytes = (2 * T * H + H) * es;
  } else if (op == "layer_norm") {
    row.bytes = (2 * T * H + 2 * H) * es;
  } else if (op == "rotary") {
    // x read and written, one cos and one sin row of head_dim/2 per token, i64 positions.
    row.bytes = 2 * T * heads * hd * es + T * hd * es + 8 * T;
  } else if (op == "cross_entropy") {
    row.bytes = T * V * es + 8 * T;
  } else if (op == "mm") {
    row.flops = 2 * T * H * H;
    row.bytes = (2 * T * H + H * H) * es;
  } else if (op == "linear") {
    row.flops = 2 * T * H * F;
    row.bytes = (T * H + F * H + T * F) * es;
  } else {
    // Causal attention: QK^T and PV over the lower triangle, the FlashAttention convention.
    row.flops = 2 * T * T * hd * heads;
    row.bytes = 4 * T * heads * hd * es;
  }
  return row;
}

OpCase make_case(const std::string& op, int64_t t, const ModelDims& d, DType dtype,
                 const Device& device) {
  OpCase c;
  c.row = describe_case(op, t, d, dtype_name(dtype));
  c.registry_op = registry_op_of(op);
  uint64_t seed = 1234;
  auto randn = [&](const Shape& shape) { return ops::randn(shape, seed++, 0, dtype, device); };
  if (op == "add" || op == "mul") {
    c.inputs = {randn({t, d.hidden}), randn({t, d.hidden})};
  } else if (op == "silu_and_mul") {
    c.inputs = {randn({t, 2 * d.ffn})};
  } else if (op == "softmax") {
    c.inputs = {randn({t, d.vocab})};
    c.attrs.set("dim", int64_t{-1});
  } else if (op == "rms_norm") {
    c.inputs = {randn({t, d.hidden}), randn({d.hidden})};
    c.attrs.set("eps", 1e-6);
  } else if (op == "layer_norm") {
    c.inputs = {randn({t, d.hidden}), randn({d.hidden}), randn({d.hidden})};
    c.attrs.set("eps", 1e-5).set("normalized_ndim", int64_t{1});
  } else if (op == "rotary") {
    auto [cos, sin] = ops::rope_cache(t, d.head_dim, 10000.0, {}, dtype, device);
    c.inputs = {randn({t, d.heads, d.head_dim}), ops::arange(t, device), cos, sin};
    c.attrs.set("style", "neox");
  } else if (op == "cross_entropy") {
    c.inputs = {randn({t, d.vocab}), ops::randint(0, d.vocab, {t}, seed++, 0, DType::kI64, device)};
    c.attrs.set("reduction", "mean");
  } else if (op == "mm") {
    c.inputs = {randn({t, d.hidden}), randn({d.hidden, d.hidden})};
  } else if (op == "linear") {
    c.inputs = {randn({t, d.hidden}), randn({d.ffn, d.hidden})};
  } else {
    Shape s{1, d.heads, t, d.head_dim};
    c.inputs = {randn(s), randn(s), randn(s)};
    c.attrs.set("causal", true);
  }
  device.synchronize();
  return c;
}

}  // namespace flagstone::bench
