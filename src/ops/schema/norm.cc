// Normalization and dim-wise activation ops: softmax, log_softmax, layer_norm, rms_norm,
// group_norm, batch_norm (inference) and seeded dropout; schemas and float64 references.
#include <cmath>

#include "flagstone/ops/random.h"
#include "internal.h"
#include "reference/host.h"
#include "shape_rules.h"

namespace flagstone::ops {
namespace {

OpSchema norm_schema(const char* name, std::vector<std::string> inputs, const char* attrs,
                     const char* doc) {
  OpSchema s;
  s.name = name;
  s.family = "norm";
  s.inputs = std::move(inputs);
  s.outputs = {"out"};
  s.attrs = {attrs};
  s.dtypes = kFloatTypes;
  s.doc = doc;
  return s;
}

// Per-row statistics over the trailing `inner` elements of each of `outer` rows.
void softmax_rows(const std::vector<double>& x, std::vector<double>& y,
                  const std::vector<int64_t>& idx, bool log) {
  double m = -INFINITY;
  for (int64_t i : idx) m = std::max(m, x[i]);
  double s = 0;
  for (int64_t i : idx) s += std::exp(x[i] - m);
  for (int64_t i : idx) y[i] = log ? x[i] - m - std::log(s) : std::exp(x[i] - m) / s;
}

void check_param(const Tensor& x, const std::vector<Tensor>& in, size_t i, const char* name,
                 const Shape& shape) {
  if (i >= in.size() || !in[i].defined()) return;
  check_same_dtype(x, "input", in[i], name);
  check_shape(in[i], name, shape);
}

}  // namespace

void register_norm_ops(Registry& registry) {
  for (const char* name : {"softmax", "log_softmax"}) {
    bool log = std::string_view(name) == "log_softmax";
    OpSchema s = norm_schema(name, {"input"}, "dim=-1",
                             log ? "x - logsumexp(x) along dim" : "exp(x - max) / sum along dim");
    s.infer = [](const std::vector<Tensor>& in, const Attrs& attrs) {
      check_dtype_in(in[0], "input", kFloatTypes);
      normalize_dim(attrs.get_int("dim", -1), in[0].dim());
      return std::vector<OutputSpec>{{in[0].shape(), in[0].dtype()}};
    };
    s.reference = [log](KernelArgs& args) {
      const Tensor& x = args.inputs[0];
      std::vector<int> dims;
      if (x.dim() > 0) dims = {normalize_dim(args.attrs.get_int("dim", -1), x.dim())};
      ref::ReductionPlan plan(x.shape(), dims);
      auto v = ref::load(x);
      std::vector<double> y(v.size());
      for (int64_t o = 0; o < plan.outer; ++o) softmax_rows(v, y, plan.indices(o), log);
      ref::store(args.outputs[0], y);
    };
    registry.add_schema(std::move(s));
  }

  // layer_norm over the trailing normalized_shape dims (default: the last dim).
  OpSchema ln = norm_schema("layer_norm", {"input", "weight?", "bias?"},
                            "normalized_ndim=1 eps=1e-5", "(x - mean) / sqrt(var + eps) * w + b");
  ln.infer = [](const std::vector<Tensor>& in, const Attrs& attrs) {
    check_dtype_in(in[0], "input", kFloatTypes);
    int64_t k = attrs.get_int("normalized_ndim", 1);
    FS_CHECK(k >= 1 && k <= in[0].dim(), kInvalidArgument, "normalized_ndim=", k, " must be in 1..",
             in[0].dim(), " for ", in[0].describe());
    Shape norm(in[0].shape().end() - k, in[0].shape().end());
    check_param(in[0], in, 1, "weight", norm);
    check_param(in[0], in, 2, "bias", norm);
    return std::vector<OutputSpec>{{in[0].shape(), in[0].dtype()}};
  };
  ln.reference = [](KernelArgs& args) {
    const Tensor& x = args.inputs[0];
    int k = static_cast<int>(args.attrs.get_int("normalized_ndim", 1));
    double eps = args.attrs.get_double("eps", 1e-5);
    std::vector<int> dims;
    for (int d = x.dim() - k; d < x.dim(); ++d) dims.push_back(d);
    ref::ReductionPlan plan(x.shape(), dims);
    auto v = ref::load(x);
    bool has_w = args.inputs.size() > 1 && args.inputs[1].defined();
    bool has_b = args.inputs.size() > 2 && args.inputs[2].defined();
    auto w = has_w ? ref::load(args.inputs[1]) : std::vector<double>();
    auto b = has_b ? ref::load(args.inputs[2]) : std::vector<double>();
    std::vector<double> y(v.size());
    for (int64_t o = 0; o < plan.outer; ++o) {
      auto idx = plan.indices(o);
      double mean = 0, var = 0;
      for (int64_t i : idx) mean += v[i];
      mean /= static_cast<double>(idx.size());
      for (int64_t i : idx) var += (v[i] - mean) * (v[i] - mean);
      var /= static_cast<double>(idx.size());
      double rstd = 1.0 / std::sqrt(var + eps);
      for (size_t j = 0; j < idx.size(); ++j)
        y[idx[j]] = (v[idx[j]] - mean) * rstd * (has_w ? w[j] : 1.0) + (has_b ? b[j] : 0.0);
    }
    ref::store(args.outputs[0], y);
  };
  registry.add_schema(std::move(ln));

  OpSchema rms = norm_schema("rms_norm", {"input", "weight?"}, "eps=1e-6",
                             "x / sqrt(mean(x^2) + eps) * w over the last dim");
  rms.infer = [](const std::vector<Tensor>& in, const Attrs&) {
    check_dtype_in(in[0], "input", kFloatTypes);
    FS_CHECK(in[0].dim() >= 1, kInvalidArgument, "rms_norm needs at least 1 dim, got ",
             in[0].describe());
    check_param(in[0], in, 1, "weight", {in[0].shape().back()});
    return std::vector<OutputSpec>{{in[0].shape(), in[0].dtype()}};
  };
  rms.reference = [](KernelArgs& args) {
    const Tensor& x = args.inputs[0];
    double eps = args.attrs.get_double("eps", 1e-6);
    int64_t d = x.shape().back();
    auto v = ref::load(x);
    bool has_w = args.inputs.size() > 1 && args.inputs[1].defined();
    auto w = has_w ? ref::load(args.inputs[1]) : std::vector<double>();
    std::vector<double> y(v.size());
    for (int64_t r = 0; d > 0 && r < static_cast<int64_t>(v.size()) / d; ++r) {
      double ss = 0;
      for (int64_t j = 0; j < d; ++j) ss += v[r * d + j] * v[r * d + j];
      double scale = 1.0 / std::sqrt(ss / static_cast<double>(d) + eps);
      for (int64_t j = 0; j < d; ++j) y[r * d + j] = v[r * d + j] * scale * (has_w ? w[j] : 1.0);
    }
    ref::store(args.outputs[0], y);
  };
  registry.add_schema(std::move(rms));

  OpSchema gn = norm_schema("group_norm", {"input", "weight?", "bias?"}, "num_groups eps=1e-5",
                            "layer norm over groups of channels of [N, C, *]");
  gn.infer = [](const std::vector<Tensor>& in, const Attrs& attrs) {
    check_dtype_in(in[0], "input", kFloatTypes);
    FS_CHECK(in[0].dim() >= 2, kInvalidArgument, "group_norm needs [N, C, *], got ",
             in[0].describe());
    int64_t g = attrs.int_at("num_groups");
    FS_CHECK(g > 0 && in[0].size(1) % g == 0, kInvalidArgument, "num_groups=", g,
             " must divide the channel count ", in[0].size(1));
    check_param(in[0], in, 1, "weight", {in[0].size(1)});
    check_param(in[0], in, 2, "bias", {in[0].size(1)});
    return std::vector<OutputSpec>{{in[0].shape(), in[0].dtype()}};
  };
  gn.reference = [](KernelArgs& args) {
    const Tensor& x = args.inputs[0];
    int64_t n = x.size(0), c = x.size(1), g = args.attrs.int_at("num_groups");
    int64_t spatial = n * c == 0 ? 0 : x.numel() / (n * c);
    double eps = args.attrs.get_double("eps", 1e-5);
    auto v = ref::load(x);
    bool has_w = args.inputs.size() > 1 && args.inputs[1].defined();
    bool has_b = args.inputs.size() > 2 && args.inputs[2].defined();
    auto w = has_w ? ref::load(args.inputs[1]) : std::vector<double>();
    auto b = has_b ? ref::load(args.inputs[2]) : std::vector<double>();
    std::vector<double> y(v.size());
    int64_t cg = c / g, len = cg * spatial;
    for (int64_t i = 0; i < n * g; ++i) {
      int64_t base = i * len;
      double mean = 0, var = 0;
      for (int64_t j = 0; j < len; ++j) mean += v[base + j];
      mean /= static_cast<double>(len);
      for (int64_t j = 0; j < len; ++j) var += (v[base + j] - mean) * (v[base + j] - mean);
      var /= static_cast<double>(len);
      double rstd = 1.0 / std::sqrt(var + eps);
      for (int64_t j = 0; j < len; ++j) {
        int64_t ch = (i % g) * cg + j / spatial;
        y[base + j] = (v[base + j] - mean) * rstd * (has_w ? w[ch] : 1.0) + (has_b ? b[ch] : 0.0);
      }
    }
    ref::store(args.outputs[0], y);
  };
  registry.add_schema(std::move(gn));

  OpSchema bn =
      norm_schema("batch_norm", {"input", "running_mean", "running_var", "weight?", "bias?"},
                  "eps=1e-5", "inference batch norm of [N, C, *] with running statistics");
  bn.infer = [](const std::vector<Tensor>& in, const Attrs&) {
    check_dtype_in(in[0], "input", kFloatTypes);
    FS_CHECK(in[0].dim() >= 2, kInvalidArgument, "batch_norm needs [N, C, *], got ",
             in[0].describe());
    Shape c{in[0].size(1)};
    check_param(in[0], in, 1, "running_mean", c);
    check_param(in[0], in, 2, "running_var", c);
    check_param(in[0], in, 3, "weight", c);
    check_param(in[0], in, 4, "bias", c);
    return std::vector<OutputSpec>{{in[0].shape(), in[0].dtype()}};
  };
  bn.reference = [](KernelArgs& args) {
    const Tensor& x = args.inputs[0];
    int64_t c = x.size(1);
    int64_t spatial = x.numel() == 0 ? 0 : x.numel() / (x.size(0) * c);
    double eps = args.attrs.get_double("eps", 1e-5);
    auto v = ref::load(x), mean = ref::load(args.inputs[1]), var = ref::load(args.inputs[2]);
    bool has_w = args.inputs.size() > 3 && args.inputs[3].defined();
    bool has_b = args.inputs.size() > 4 && args.inputs[4].defined();
    auto w = has_w ? ref::load(args.inputs[3]) : std::vector<double>();
    auto b = has_b ? ref::load(args.inputs[4]) : std::vector<double>();
    std::vector<double> y(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      int64_t ch = (static_cast<int64_t>(i) / spatial) % c;
      y[i] = (v[i] - mean[ch]) / std::sqrt(var[ch] + eps) * (has_w ? w[ch] : 1.0) +
             (has_b ? b[ch] : 0.0);
    }
    ref::store(args.outputs[0], y);
  };
  registry.add_schema(std::move(bn));

  OpSchema dropout = norm_schema(
      "dropout", {"input"}, "p=0.5 seed=0 offset=0",
      "zero each element with probability p (Philox stream), scale the rest by 1/(1-p)");
  dropout.infer = [](const std::vector<Tensor>& in, const Attrs& attrs) {
    check_dtype_in(in[0], "input", kFloatTypes);
    double p = attrs.get_double("p", 0.5);
    FS_CHECK(p >= 0 && p <= 1, kInvalidArgument, "dropout probability p=", p, " is outside [0, 1]");
    return std::vector<OutputSpec>{{in[0].shape(), in[0].dtype()}};
  };
  dropout.reference = [](KernelArgs& args) {
    double p = args.attrs.get_double("p", 0.5);
    auto seed = static_cast<uint64_t>(args.attrs.get_int("seed", 0));
    auto offset = static_cast<uint64_t>(args.attrs.get_int("offset", 0));
    auto v = ref::load(args.inputs[0]);
    for (size_t i = 0; i < v.size(); ++i) {
      bool keep = random_uniform(seed, offset, i) >= p;
      v[i] = keep && p < 1 ? v[i] / (1.0 - p) : 0.0;
    }
    ref::store(args.outputs[0], v);
  };
  registry.add_schema(std::move(dropout));
}

}  // namespace flagstone::ops
