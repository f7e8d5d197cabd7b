// Large-model ops: embedding, rotary embedding (cache with linear/ntk/llama3 scaling, neox and
// gpt-j layouts, partial rotary), silu/gelu_and_mul, fused add + rms_norm, cross_entropy,
// one_hot; schemas and float64 references.
#include <cmath>

#include "internal.h"
#include "reference/host.h"
#include "shape_rules.h"

namespace flagstone::ops {
namespace {

OpSchema llm_schema(const char* name, std::vector<std::string> inputs,
                    std::vector<std::string> outputs, const char* attrs, const char* doc) {
  OpSchema s;
  s.name = name;
  s.family = "llm";
  s.inputs = std::move(inputs);
  s.outputs = std::move(outputs);
  if (*attrs) s.attrs = {attrs};
  s.dtypes = kFloatTypes;
  s.doc = doc;
  return s;
}

double gelu(double x, bool tanh_approx) {
  if (tanh_approx)
    return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
  return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
}

}  // namespace

// Inverse frequencies of rotary embedding under a scaling scheme (shared with cpu kernels).
std::vector<double> rope_inv_freq(const Attrs& attrs, int64_t rotary_dim) {
  double base = attrs.get_double("base", 10000.0);
  std::string scaling = attrs.get_string("scaling", "none");
  double factor = attrs.get_double("factor", 1.0);
  auto half = rotary_dim / 2;
  if (scaling == "ntk") {
    base *= std::pow(factor, static_cast<double>(rotary_dim) / static_cast<double>(rotary_dim - 2));
  }
  std::vector<double> inv(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i)
    inv[i] = 1.0 / std::pow(base, static_cast<double>(2 * i) / static_cast<double>(rotary_dim));
  if (scaling == "linear") {
    for (auto& f : inv) f /= factor;
  } else if (scaling == "llama3") {
    double old_ctx = attrs.get_double("original_max_positions", 8192);
    double low = attrs.get_double("low_freq_factor", 1.0);
    double high = attrs.get_double("high_freq_factor", 4.0);
    double low_wavelen = old_ctx / low, high_wavelen = old_ctx / high;
    for (auto& f : inv) {
      double wavelen = 2 * M_PI / f;
      if (wavelen < high_wavelen) continue;
      if (wavelen > low_wavelen) {
        f /= factor;
      } else {
        double smooth = (old_ctx / wavelen - low) / (high - low);
        f = (1 - smooth) * f / factor + smooth * f;
      }
    }
  } else {
    FS_CHECK(scaling == "none" || scaling == "ntk", kInvalidArgument, "rotary scaling '", scaling,
             "' (expected none, linear, ntk or llama3)");
  }
  return inv;
}

void register_llm_ops(Registry& registry) {
  // embedding(indices, weight): rows of weight, shape indices.shape + [dim].
  OpSchema emb = llm_schema("embedding", {"indices", "weight"}, {"out"}, "", "weight[indices]");
  emb.dtypes = all_plain_types();
  emb.dispatch_input = 1;
  emb.infer = [](const std::vector<Tensor>& in, const Attrs&) {
    check_index(in[0], "indices");
    check_ndim(in[1], "weight", 2);
    Shape shape = in[0].shape();
    shape.push_back(in[1].size(1));
    return std::vector<OutputSpec>{{shape, in[1].dtype()}};
  };
  emb.reference = [](KernelArgs& args) {
    auto idx = ref::load_i64(args.inputs[0]);
    const Tensor& w = args.inputs[1];
    int64_t rows = w.size(0), dim = w.size(1);
    auto wv = ref::load(w);
    std::vector<double> out(static_cast<size_t>(idx.size() * dim));
    for (size_t i = 0; i < idx.size(); ++i) {
      FS_CHECK(idx[i] >= 0 && idx[i] < rows, kInvalidArgument, "op 'embedding': index ", idx[i],
               " at position ", i, " is out of range for a table of ", rows, " rows");
      for (int64_t j = 0; j < dim; ++j) out[i * dim + j] = wv[idx[i] * dim + j];
    }
    ref::store(args.outputs[0], out);
  };
  registry.add_schema(std::move(emb));

  // rope_cache: cos and sin tables [max_positions, rotary_dim/2] (a factory op).
  OpSchema cache = llm_schema("rope_cache", {}, {"cos", "sin"},
                              "max_positions rotary_dim base=10000 scaling=none|linear|ntk|llama3 "
                              "factor=1 original_max_positions=8192 low_freq_factor=1 "
                              "high_freq_factor=4 dtype=f32 device=cpu",
                              "rotary cos/sin tables with context-extension scaling");
  cache.is_factory = true;
  cache.dispatch_input = -1;
  cache.infer = [](const std::vector<Tensor>&, const Attrs& attrs) {
    int64_t p = attrs.int_at("max_positions"), r = attrs.int_at("rotary_dim");
    FS_CHECK(p >= 0 && r > 0 && r % 2 == 0, kInvalidArgument,
             "rope_cache needs max_positions >= 0 and an even rotary_dim > 0, got ", p, " and ", r);
    rope_inv_freq(attrs, r);
    DType d = attr_dtype(attrs, DType::kF32);
    FS_CHECK(is_floating(d), kInvalidArgument, "rope_cache dtype must be floating, got ",
             dtype_name(d));
    return std::vector<OutputSpec>{{{p, r / 2}, d}, {{p, r / 2}, d}};
  };
  cache.reference = [](KernelArgs& args) {
    int64_t p = args.attrs.int_at("max_positions"), r = args.attrs.int_at("rotary_dim");
    auto inv = rope_inv_freq(args.attrs, r);
    std::vector<double> c(static_cast<size_t>(p * r / 2)), s(c.size());
    for (int64_t t = 0; t < p; ++t)
      for (int64_t i = 0; i < r / 2; ++i) {
        // The angle is rounded to f32 as the model code computes it (position * inv_freq in f32).
        double angle = static_cast<float>(static_cast<double>(t) * static_cast<float>(inv[i]));
        c[t * r / 2 + i] = std::cos(angle);
        s[t * r / 2 + i] = std::sin(angle);
      }
    ref::store(args.outputs[0], c);
    ref::store(args.outputs[1], s);
  };
  registry.add_schema(std::move(cache));

  // rotary_embedding(x [..., tokens, heads, head_dim], positions [..., tokens], cos, sin).
  OpSchema rope = llm_schema("rotary_embedding", {"input", "positions", "cos", "sin"}, {"out"},
                             "style=neox|gptj",
                             "rotate the first 2*cos.size(1) features of each head by position");
  rope.infer = [](const std::vector<Tensor>& in, const Attrs& attrs) {
    check_dtype_in(in[0], "input", kFloatTypes);
    FS_CHECK(in[0].dim() >= 3, kInvalidArgument, "tensor 'input' is ", in[0].describe(),
             "; expected [..., tokens, heads, head_dim]");
    check_index(in[1], "positions");
    Shape pos_shape(in[0].shape().begin(), in[0].shape().end() - 2);
    check_shape(in[1], "positions", pos_shape);
    check_ndim(in[2], "cos", 2);
    check_shape(in[3], "sin", in[2].shape());
    check_floating(in[2], "cos");
    check_same_dtype(in[2], "cos", in[3], "sin");
    FS_CHECK(2 * in[2].size(1) <= in[0].shape().back(), kInvalidArgument, "rotary dim 2*",
             in[2].size(1), " exceeds head_dim ", in[0].shape().back());
    std::string style = attrs.get_string("style", "neox");
    FS_CHECK(style == "neox" || style == "gptj", kInvalidArgument, "rotary style '", style,
             "' (expected neox or gptj)");
    return std::vector<OutputSpec>{{in[0].shape(), in[0].dtype()}};
  };
  rope.reference = [](KernelArgs& args) {
    const Tensor& x = args.inputs[0];
    auto v = ref::load(x);
    auto pos = ref::load_i64(args.inputs[1]);
    auto c = ref::load(args.inputs[2]), s = ref::load(args.inputs[3]);
    int64_t max_pos = args.inputs[2].size(0), half = args.inputs[2].size(1);
    int64_t heads = x.size(x.dim() - 2), hd = x.shape().back();
    bool neox = args.attrs.get_string("style", "neox") == "neox";
    std::vector<double> y = v;
    for (size_t t = 0; t < pos.size(); ++t) {
      FS_CHECK(pos[t] >= 0 && pos[t] < max_pos, kInvalidArgument,
               "op 'rotary_embedding': position ", pos[t], " of token ", t,
               " is outside the cos/sin table of ", max_pos, " rows");
      for (int64_t h = 0; h < heads; ++h) {
        int64_t base = (static_cast<int64_t>(t) * heads + h) * hd;
        for (int64_t i = 0; i < half; ++i) {
          double cv = c[pos[t] * half + i], sv = s[pos[t] * half + i];
          int64_t a = neox ? base + i : base + 2 * i, b = neox ? base + i + half : base + 2 * i + 1;
          y[a] = v[a] * cv - v[b] * sv;
          y[b] = v[b] * cv + v[a] * sv;
        }
      }
    }
    ref::store(args.outputs[0], y);
  };
  registry.add_schema(std::move(rope));

  for (const char* name : {"silu_and_mul", "gelu_and_mul"}) {
    bool is_gelu = std::string_view(name) == "gelu_and_mul";
    OpSchema s =
        llm_schema(name, {"input"}, {"out"}, is_gelu ? "approximate=none|tanh" : "",
                   is_gelu ? "gelu(x[..., :d]) * x[..., d:]" : "silu(x[..., :d]) * x[..., d:]");
    s.infer = [](const std::vector<Tensor>& in, const Attrs&) {
      check_dtype_in(in[0], "input", kFloatTypes);
      FS_CHECK(in[0].dim() >= 1 && in[0].shape().back() % 2 == 0, kInvalidArgument,
               "tensor 'input' is ", in[0].describe(),
               "; the last dim must be even (gate and up halves)");
      Shape shape = in[0].shape();
      shape.back() /= 2;
      return std::vector<OutputSpec>{{shape, in[0].dtype()}};
    };
    s.reference = [is_gelu](KernelArgs& args) {
      auto v = ref::load(args.inputs[0]);
      int64_t d = args.outputs[0].shape().back();
      bool tanh_approx = args.attrs.get_string("approximate", "none") == "tanh";
      std::vector<double> y(static_cast<size_t>(args.outputs[0].numel()));
      for (int64_t r = 0; d > 0 && r < static_cast<int64_t>(y.size()) / d; ++r)
        for (int64_t j = 0; j < d; ++j) {
          double g = v[r * 2 * d + j], u = v[r * 2 * d + d + j];
          double act = is_gelu ? gelu(g, tanh_approx) : g / (1.0 + std::exp(-g));
          y[r * d + j] = act * u;
        }
      ref::store(args.outputs[0], y);
    };
    registry.add_schema(std::move(s));
  }

  // add_rms_norm: residual_out = x + residual (rounded to the dtype), out = rms_norm(residual_out).
  OpSchema arn = llm_schema("add_rms_norm", {"input", "residual", "weight"},
                            {"out", "residual_out"}, "eps=1e-6", "fused residual add and rms_norm");
  arn.infer = [](const std::vector<Tensor>& in, const Attrs&) {
    check_dtype_in(in[0], "input", kFloatTypes);
    check_same_dtype(in[0], "input", in[1], "residual");
    check_shape(in[1], "residual", in[0].shape());
    check_same_dtype(in[0], "input", in[2], "weight");
    FS_CHECK(in[0].dim() >= 1, kInvalidArgument, "add_rms_norm needs at least 1 dim");
    check_shape(in[2], "weight", {in[0].shape().back()});
    return std::vector<OutputSpec>{{in[0].shape(), in[0].dtype()}, {in[0].shape(), in[0].dtype()}};
  };
  arn.reference = [](KernelArgs& args) {
    DType dt = args.inputs[0].dtype();
    auto x = ref::load(args.inputs[0]), r = ref::load(args.inputs[1]),
         w = ref::load(args.inputs[2]);
    double eps = args.attrs.get_double("eps", 1e-6);
    int64_t d = args.inputs[0].shape().back();
    std::vector<double> sum(x.size()), y(x.size());
    for (size_t i = 0; i < x.size(); ++i) sum[i] = ref::round_to(dt, x[i] + r[i]);
    for (int64_t row = 0; d > 0 && row < static_cast<int64_t>(x.size()) / d; ++row) {
      double ss = 0;
      for (int64_t j = 0; j < d; ++j) ss += sum[row * d + j] * sum[row * d + j];
      double scale = 1.0 / std::sqrt(ss / static_cast<double>(d) + eps);
      for (int64_t j = 0; j < d; ++j) y[row * d + j] = sum[row * d + j] * scale * w[j];
    }
    ref::store(args.outputs[0], y);
    ref::store(args.outputs[1], sum);
  };
  registry.add_schema(std::move(arn));

  // cross_entropy(logits [N, C] or [C], target [N] or []): torch.nn.functional.cross_entropy.
  OpSchema ce = llm_schema("cross_entropy", {"input", "target"}, {"loss"},
                           "reduction=mean|sum|none ignore_index=-100 label_smoothing=0",
                           "softmax cross entropy with class-index targets");
  ce.infer = [](const std::vector<Tensor>& in, const Attrs& attrs) {
    check_dtype_in(in[0], "input", kFloatTypes);
    check_index(in[1], "target");
    FS_CHECK(in[0].dim() == 1 || in[0].dim() == 2, kInvalidArgument, "tensor 'input' is ",
             in[0].describe(), "; expected [N, C] or [C] logits");
    Shape target = in[0].dim() == 2 ? Shape{in[0].size(0)} : Shape{};
    check_shape(in[1], "target", target);
    std::string red = attrs.get_string("reduction", "mean");
    FS_CHECK(red == "mean" || red == "sum" || red == "none", kInvalidArgument, "reduction='", red,
             "' (expected mean, sum or none)");
    double ls = attrs.get_double("label_smoothing", 0);
    FS_CHECK(ls >= 0 && ls <= 1, kInvalidArgument, "label_smoothing=", ls, " is outside [0, 1]");
    return std::vector<OutputSpec>{{red == "none" ? target : Shape{}, in[0].dtype()}};
  };
  ce.reference = [](KernelArgs& args) {
    const Tensor& x = args.inputs[0];
    int64_t n = x.dim() == 2 ? x.size(0) : 1, c = x.shape().back();
    auto v = ref::load(x);
    auto t = ref::load_i64(args.inputs[1]);
    int64_t ignore = args.attrs.get_int("ignore_index", -100);
    double ls = args.attrs.get_double("label_smoothing", 0);
    std::string red = args.attrs.get_string("reduction", "mean");
    std::vector<double> losses(static_cast<size_t>(n));
    double total = 0, count = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (t[i] == ignore) {
        losses[i] = 0;
        continue;
      }
      FS_CHECK(t[i] >= 0 && t[i] < c, kInvalidArgument, "op 'cross_entropy': target ", t[i],
               " of sample ", i, " is outside [0, ", c, ")");
      double m = -INFINITY, s = 0, sum_logp = 0;
      for (int64_t j = 0; j < c; ++j) m = std::max(m, v[i * c + j]);
      for (int64_t j = 0; j < c; ++j) s += std::exp(v[i * c + j] - m);
      double lse = m + std::log(s);
      double nll = lse - v[i * c + t[i]];
      // Only with smoothing does every log-probability count: a masked (-inf) logit must not
      // turn an unsmoothed loss into 0 * -inf = NaN, as torch's stays finite.
      if (ls > 0) {
        for (int64_t j = 0; j < c; ++j) sum_logp += v[i * c + j] - lse;
        losses[i] = (1 - ls) * nll - ls * sum_logp / static_cast<double>(c);
      } else {
        losses[i] = nll;
      }
      total += losses[i];
      count += 1;
    }
    if (red == "none")
      ref::store(args.outputs[0], losses);
    else
      ref::store(args.outputs[0], {red == "sum" ? total : total / count});
  };
  registry.add_schema(std::move(ce));

  OpSchema oh = llm_schema("one_hot", {"indices"}, {"out"}, "num_classes=-1",
                           "i64 one-hot rows; num_classes=-1 uses max+1");
  oh.dtypes = {DType::kI64, DType::kI32};
  oh.infer = [](const std::vector<Tensor>& in, const Attrs& attrs) {
    check_index(in[0], "indices");
    int64_t classes = attrs.get_int("num_classes", -1);
    if (classes < 0) {
      // The output shape depends on the data here, as in torch.
      auto v = ref::load_i64(in[0]);
      FS_CHECK(!v.empty(), kInvalidArgument, "one_hot of an empty tensor needs num_classes");
      classes = *std::max_element(v.begin(), v.end()) + 1;
    }
    Shape shape = in[0].shape();
    shape.push_back(classes);
    return std::vector<OutputSpec>{{shape, DType::kI64}};
  };
  oh.reference = [](KernelArgs& args) {
    auto v = ref::load_i64(args.inputs[0]);
    int64_t classes = args.outputs[0].shape().back();
    std::vector<int64_t> out(v.size() * static_cast<size_t>(classes), 0);
    for (size_t i = 0; i < v.size(); ++i) {
      FS_CHECK(v[i] >= 0 && v[i] < classes, kInvalidArgument, "op 'one_hot': index ", v[i],
               " is outside [0, ", classes, ")");
      out[i * classes + v[i]] = 1;
    }
    ref::store_i64(args.outputs[0], out);
  };
  registry.add_schema(std::move(oh));
}

}  // namespace flagstone::ops
