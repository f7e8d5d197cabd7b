// Ordering and sampling: topk, sort, argsort, seeded multinomial and the top-k / top-p / min-p
// token sampler; schemas and float64 references. NaN sorts above every number, as in torch.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "flagstone/ops/random.h"
#include "internal.h"
#include "reference/host.h"
#include "shape_rules.h"

namespace flagstone::ops {
namespace {

// Strict "a comes before b" for ascending order with NaN largest.
bool less_nan_last(double a, double b) {
  if (std::isnan(a)) return false;
  if (std::isnan(b)) return true;
  return a < b;
}

// Stable order of row `idx` of `v`: ascending or descending, NaN treated as the largest value.
std::vector<int64_t> order_row(const std::vector<double>& v, const std::vector<int64_t>& idx,
                               bool descending) {
  std::vector<int64_t> order(idx.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    double x = v[idx[a]], y = v[idx[b]];
    return descending ? less_nan_last(y, x) : less_nan_last(x, y);
  });
  return order;
}

OpSchema sort_schema(const char* name, std::vector<std::string> outputs, const char* attrs,
                     const char* doc) {
  OpSchema s;
  s.name = name;
  s.family = "sort";
  s.inputs = {"input"};
  s.outputs = std::move(outputs);
  s.attrs = {attrs};
  s.dtypes = numeric_types();
  s.doc = doc;
  return s;
}

// Writes values and/or indices of rows ordered by `pick(row) -> kept positions`.
void write_ordered(KernelArgs& args, int dim, int64_t keep, bool descending, bool values_out) {
  const Tensor& x = args.inputs[0];
  std::vector<int> dims;
  if (x.dim() > 0) dims = {dim};
  ref::ReductionPlan in_plan(x.shape(), dims);
  const Tensor& first = args.outputs[0];
  ref::ReductionPlan out_plan(first.shape(), dims);
  auto v = ref::load(x);
  auto vi = ref::load_i64(x);
  std::vector<double> values(static_cast<size_t>(first.numel()));
  std::vector<int64_t> ivalues(values.size()), indices(values.size());
  for (int64_t o = 0; o < in_plan.outer; ++o) {
    auto idx = in_plan.indices(o);
    auto out_idx = out_plan.indices(o);
    auto order = order_row(v, idx, descending);
    for (int64_t k = 0; k < keep; ++k) {
      values[out_idx[k]] = v[idx[order[k]]];
      ivalues[out_idx[k]] = vi[idx[order[k]]];
      indices[out_idx[k]] = order[k];
    }
  }
  if (values_out) {
    if (is_floating(x.dtype()))
      ref::store(args.outputs[0], values);
    else
      ref::store_i64(args.outputs[0], ivalues);
  }
  ref::store_i64(args.outputs[values_out ? 1 : 0], indices);
}

// Probabilities of one row after temperature, top-k, top-p and min-p filtering (vLLM's order:
// temperature, then top-k and top-p on the sorted distribution, then min-p), renormalized.
std::vector<double> filtered_probs(const double* logits, int64_t n, const Attrs& attrs) {
  double temperature = attrs.get_double("temperature", 1.0);
  int64_t top_k = attrs.get_int("top_k", 0);
  double top_p = attrs.get_double("top_p", 1.0);
  double min_p = attrs.get_double("min_p", 0.0);
  std::vector<double> p(static_cast<size_t>(n));
  double m = -INFINITY;
  for (int64_t j = 0; j < n; ++j) m = std::max(m, logits[j] / temperature);
  double total = 0;
  for (int64_t j = 0; j < n; ++j) total += p[j] = std::exp(logits[j] / temperature - m);
  for (auto& x : p) x /= total;
  std::vector<int64_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  auto order = order_row(p, idx, true);
  std::vector<bool> keep(static_cast<size_t>(n), true);
  if (top_k > 0)
    for (int64_t r = top_k; r < n; ++r) keep[order[r]] = false;
  if (top_p < 1.0) {
    // On the distribution renormalized after top-k: keep the smallest prefix reaching top_p.
    double mass = 0, cum = 0;
    for (int64_t j = 0; j < n; ++j) mass += keep[j] ? p[j] : 0;
    for (int64_t r = 0; r < n; ++r) {
      if (!keep[order[r]]) continue;
      if (cum >= top_p * mass) keep[order[r]] = false;
      cum += p[order[r]];
    }
  }
  if (min_p > 0) {
    double threshold = min_p * p[order[0]];
    for (int64_t j = 0; j < n; ++j)
      if (p[j] < threshold) keep[j] = false;
  }
  double kept = 0;
  for (int64_t j = 0; j < n; ++j) kept += keep[j] ? p[j] : 0;
  for (int64_t j = 0; j < n; ++j) p[j] = keep[j] ? p[j] / kept : 0;
  return p;
}

// Inverse CDF: the first index whose running sum exceeds u (skipping zero-probability entries).
int64_t pick(const std::vector<double>& p, double u) {
  double cum = 0;
  int64_t last = -1;
  for (int64_t j = 0; j < static_cast<int64_t>(p.size()); ++j) {
    if (p[j] <= 0) continue;
    cum += p[j];
    last = j;
    if (u < cum) return j;
  }
  return last;
}

}  // namespace

void register_sort_sample_ops(Registry& registry) {
  OpSchema topk = sort_schema("topk", {"values", "indices"}, "k dim=-1 largest=true",
                              "k largest (or smallest) along dim, sorted; ties keep index order");
  topk.infer = [](const std::vector<Tensor>& in, const Attrs& attrs) {
    check_dtype_in(in[0], "input", numeric_types());
    int d = normalize_dim(attrs.get_int("dim", -1), in[0].dim());
    int64_t n = in[0].dim() == 0 ? 1 : in[0].size(d);
    int64_t k = attrs.int_at("k");
    FS_CHECK(k >= 0 && k <= n, kInvalidArgument, "k=", k, " is outside [0, ", n, "] for dim ", d,
             " of ", in[0].describe());
    Shape shape = in[0].shape();
    if (!shape.empty()) shape[d] = k;
    return std::vector<OutputSpec>{{shape, in[0].dtype()}, {shape, DType::kI64}};
  };
  topk.reference = [](KernelArgs& args) {
    int d = normalize_dim(args.attrs.get_int("dim", -1), args.inputs[0].dim());
    write_ordered(args, d, args.attrs.int_at("k"), args.attrs.get_bool("largest", true), true);
  };
  registry.add_schema(std::move(topk));

  for (const char* name : {"sort", "argsort"}) {
    bool values = std::string_view(name) == "sort";
    OpSchema s = sort_schema(name,
                             values ? std::vector<std::string>{"values", "indices"}
                                    : std::vector<std::string>{"indices"},
                             "dim=-1 descending=false",
                             "stable sort along dim; NaN sorts last (first when descending)");
    s.infer = [values](const std::vector<Tensor>& in, const Attrs& attrs) {
      check_dtype_in(in[0], "input", numeric_types());
      normalize_dim(attrs.get_int("dim", -1), in[0].dim());
      std::vector<OutputSpec> out;
      if (values) out.push_back({in[0].shape(), in[0].dtype()});
      out.push_back({in[0].shape(), DType::kI64});
      return out;
    };
    s.reference = [values](KernelArgs& args) {
      const Tensor& x = args.inputs[0];
      int d = normalize_dim(args.attrs.get_int("dim", -1), x.dim());
      write_ordered(args, d, x.dim() == 0 ? 1 : x.size(d), args.attrs.get_bool("descending", false),
                    values);
    };
    registry.add_schema(std::move(s));
  }

  OpSchema sample;
  sample.name = "sample";
  sample.family = "sample";
  sample.inputs = {"logits"};
  sample.outputs = {"tokens"};
  sample.attrs = {"temperature=1 top_k=0 top_p=1 min_p=0 seed=0 offset=0"};
  sample.dtypes = kFloatTypes;
  sample.doc =
      "one token per row of [batch, vocab] logits; temperature 0 is greedy (first maximum); "
      "row r draws Philox element r of (seed, offset)";
  sample.infer = [](const std::vector<Tensor>& in, const Attrs& attrs) {
    check_dtype_in(in[0], "logits", kFloatTypes);
    check_ndim(in[0], "logits", 2);
    FS_CHECK(in[0].size(1) > 0, kInvalidArgument, "logits ", in[0].describe(),
             " have an empty vocabulary");
    double t = attrs.get_double("temperature", 1.0), p = attrs.get_double("top_p", 1.0),
           mp = attrs.get_double("min_p", 0.0);
    FS_CHECK(t >= 0, kInvalidArgument, "temperature=", t, " must be >= 0");
    FS_CHECK(p > 0 && p <= 1, kInvalidArgument, "top_p=", p, " must be in (0, 1]");
    FS_CHECK(mp >= 0 && mp <= 1, kInvalidArgument, "min_p=", mp, " must be in [0, 1]");
    FS_CHECK(attrs.get_int("top_k", 0) >= 0, kInvalidArgument,
             "top_k must be >= 0 (0 disables it)");
    return std::vector<OutputSpec>{{{in[0].size(0)}, DType::kI64}};
  };
  sample.reference = [](KernelArgs& args) {
    const Tensor& x = args.inputs[0];
    int64_t b = x.size(0), n = x.size(1);
    auto v = ref::load(x);
    auto seed = static_cast<uint64_t>(args.attrs.get_int("seed", 0));
    auto offset = static_cast<uint64_t>(args.attrs.get_int("offset", 0));
    bool greedy = args.attrs.get_double("temperature", 1.0) == 0;
    std::vector<int64_t> tokens(static_cast<size_t>(b));
    for (int64_t r = 0; r < b; ++r) {
      const double* row = &v[r * n];
      if (greedy) {
        tokens[r] = std::max_element(row, row + n, less_nan_last) - row;
        continue;
      }
      tokens[r] = pick(filtered_probs(row, n, args.attrs), random_uniform(seed, offset, r));
    }
    ref::store_i64(args.outputs[0], tokens);
  };
  registry.add_schema(std::move(sample));

  OpSchema mn;
  mn.name = "multinomial";
  mn.family = "sample";
  mn.inputs = {"probs"};
  mn.outputs = {"indices"};
  mn.attrs = {"num_samples replacement=false seed=0 offset=0"};
  mn.dtypes = kFloatTypes;
  mn.doc =
      "draw indices from non-negative weights [n] or [batch, n]; sample s of row r uses Philox "
      "element r*num_samples+s";
  mn.infer = [](const std::vector<Tensor>& in, const Attrs& attrs) {
    check_dtype_in(in[0], "probs", kFloatTypes);
    FS_CHECK(in[0].dim() == 1 || in[0].dim() == 2, kInvalidArgument, "probs ", in[0].describe(),
             " must be [n] or [batch, n]");
    int64_t n = in[0].shape().back(), k = attrs.int_at("num_samples");
    FS_CHECK(k > 0, kInvalidArgument, "num_samples=", k, " must be positive");
    FS_CHECK(attrs.get_bool("replacement", false) || k <= n, kInvalidArgument, "cannot draw ", k,
             " samples without replacement from ", n, " categories");
    Shape shape = in[0].dim() == 2 ? Shape{in[0].size(0), k} : Shape{k};
    return std::vector<OutputSpec>{{shape, DType::kI64}};
  };
  mn.reference = [](KernelArgs& args) {
    const Tensor& x = args.inputs[0];
    int64_t n = x.shape().back(), rows = x.dim() == 2 ? x.size(0) : 1;
    int64_t k = args.attrs.int_at("num_samples");
    bool replacement = args.attrs.get_bool("replacement", false);
    auto seed = static_cast<uint64_t>(args.attrs.get_int("seed", 0));
    auto offset = static_cast<uint64_t>(args.attrs.get_int("offset", 0));
    auto v = ref::load(x);
    std::vector<int64_t> out(static_cast<size_t>(rows * k));
    for (int64_t r = 0; r < rows; ++r) {
      std::vector<double> w(v.begin() + r * n, v.begin() + (r + 1) * n);
      double total = 0;
      for (double e : w) {
        FS_CHECK(e >= 0 && std::isfinite(e), kInvalidArgument, "op 'multinomial': row ", r,
                 " has a negative, infinite or NaN weight");
        total += e;
      }
      FS_CHECK(total > 0, kInvalidArgument, "op 'multinomial': row ", r, " sums to zero");
      for (int64_t s = 0; s < k; ++s) {
        double sum = 0;
        for (double e : w) sum += e;
        FS_CHECK(sum > 0, kInvalidArgument, "op 'multinomial': row ", r, " has fewer than ", k,
                 " nonzero weights to draw without replacement");
        std::vector<double> p(w.size());
        for (size_t j = 0; j < w.size(); ++j) p[j] = w[j] / sum;
        int64_t j = pick(p, random_uniform(seed, offset, static_cast<uint64_t>(r * k + s)));
        out[r * k + s] = j;
        if (!replacement) w[j] = 0;
      }
    }
    ref::store_i64(args.outputs[0], out);
  };
  registry.add_schema(std::move(mn));
}

}  // namespace flagstone::ops
