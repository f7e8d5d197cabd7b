// Reductions over any set of dims (sum, mean, var, norm, argmax...) and scans (cumsum,
// cummax): schemas and float64 references with torch's NaN, tie and dtype rules.
#include <cmath>
#include <limits>

#include "internal.h"
#include "reference/host.h"
#include "shape_rules.h"

namespace flagstone::ops {
namespace {

enum class Kind {
  kSum,
  kMean,
  kProd,
  kAmax,
  kAmin,
  kVar,
  kStd,
  kNorm,
  kLogsumexp,
  kAll,
  kAny,
  kCount
};

struct ReduceOp {
  const char* name;
  Kind kind;
  std::vector<DType> dtypes;
  const char* attrs;
  const char* doc;
};

const std::vector<ReduceOp>& reduce_ops() {
  static const std::vector<ReduceOp> ops = {
      {"sum", Kind::kSum, all_plain_types(), "dims=[] keepdim=false dtype?",
       "sum (ints and bool -> i64)"},
      {"mean", Kind::kMean, kFloatTypes, "dims=[] keepdim=false", "arithmetic mean"},
      {"prod", Kind::kProd, all_plain_types(), "dims=[] keepdim=false dtype?",
       "product (ints and bool -> i64)"},
      {"amax", Kind::kAmax, numeric_types(), "dims=[] keepdim=false", "maximum, NaN propagates"},
      {"amin", Kind::kAmin, numeric_types(), "dims=[] keepdim=false", "minimum, NaN propagates"},
      {"var", Kind::kVar, kFloatTypes, "dims=[] correction=1 keepdim=false",
       "variance / max(0, N - correction)"},
      {"std", Kind::kStd, kFloatTypes, "dims=[] correction=1 keepdim=false", "sqrt(var)"},
      {"norm", Kind::kNorm, kFloatTypes, "p=2 (number, inf, -inf or \"fro\") dims=[] keepdim=false",
       "vector p-norm over dims"},
      {"logsumexp", Kind::kLogsumexp, kFloatTypes, "dims=[] keepdim=false",
       "log(sum(exp(x))), stable"},
      {"all", Kind::kAll, all_plain_types(), "dims=[] keepdim=false",
       "every element nonzero -> bool"},
      {"any", Kind::kAny, all_plain_types(), "dims=[] keepdim=false",
       "some element nonzero -> bool"},
      {"count_nonzero", Kind::kCount, all_plain_types(), "dims=[] keepdim=false",
       "number of nonzeros -> i64"},
  };
  return ops;
}

DType reduce_out_dtype(Kind kind, DType in, const Attrs& attrs) {
  switch (kind) {
    case Kind::kSum:
    case Kind::kProd:
      if (attrs.has("dtype")) return attr_dtype(attrs, in);
      return is_floating(in) ? in : DType::kI64;
    case Kind::kAll:
    case Kind::kAny:
      return DType::kBool;
    case Kind::kCount:
      return DType::kI64;
    default:
      return in;
  }
}

// p of norm: a number, or the strings "fro", "inf", "-inf".
double norm_p(const Attrs& attrs) {
  if (!attrs.has("p")) return 2;
  const auto& v = attrs.items().at("p").value();
  if (auto* s = std::get_if<std::string>(&v)) {
    if (*s == "fro") return 2;
    if (*s == "inf") return INFINITY;
    if (*s == "-inf") return -INFINITY;
    throw_error(ErrorCategory::kInvalidArgument, "norm p='", *s,
                "' (expected a number, fro, inf or -inf)");
  }
  return attrs.get_double("p", 2);
}

double reduce_values(Kind kind, const std::vector<double>& v, const Attrs& attrs) {
  double n = static_cast<double>(v.size());
  switch (kind) {
    case Kind::kSum: {
      double s = 0;
      for (double x : v) s += x;
      return s;
    }
    case Kind::kMean: {
      double s = 0;
      for (double x : v) s += x;
      return s / n;
    }
    case Kind::kProd: {
      double p = 1;
      for (double x : v) p *= x;
      return p;
    }
    case Kind::kAmax:
    case Kind::kAmin: {
      double r = v[0];
      for (double x : v) {
        if (std::isnan(x)) return x;
        r = kind == Kind::kAmax ? std::max(r, x) : std::min(r, x);
      }
      return r;
    }
    case Kind::kVar:
    case Kind::kStd: {
      double mean = 0;
      for (double x : v) mean += x;
      mean /= n;
      double ss = 0;
      for (double x : v) ss += (x - mean) * (x - mean);
      double denom = std::max(0.0, n - attrs.get_double("correction", 1));
      double var = ss / denom;
      return kind == Kind::kVar ? var : std::sqrt(var);
    }
    case Kind::kNorm: {
      double p = norm_p(attrs);
      if (std::isinf(p)) {
        double r = p > 0 ? 0 : INFINITY;
        for (double x : v) {
          if (std::isnan(x)) return x;
          r = p > 0 ? std::max(r, std::fabs(x)) : std::min(r, std::fabs(x));
        }
        return r;
      }
      if (p == 0) {
        double c = 0;
        for (double x : v) c += x != 0;
        return c;
      }
      double s = 0;
      for (double x : v) s += std::pow(std::fabs(x), p);
      return p == 1 ? s : std::pow(s, 1.0 / p);
    }
    case Kind::kLogsumexp: {
      double m = -INFINITY;
      for (double x : v) m = std::max(m, x);
      for (double x : v)
        if (std::isnan(x)) return x;
      if (std::isinf(m)) return m == -INFINITY ? m : (m > 0 ? m : m);
      double s = 0;
      for (double x : v) s += std::exp(x - m);
      return m + std::log(s);
    }
    case Kind::kAll: {
      for (double x : v)
        if (x == 0) return 0;
      return 1;
    }
    case Kind::kAny: {
      for (double x : v)
        if (x != 0) return 1;
      return 0;
    }
    case Kind::kCount: {
      double c = 0;
      for (double x : v) c += x != 0;
      return c;
    }
  }
  return 0;
}

void reduce_reference(const ReduceOp& op, KernelArgs& args) {
  const Tensor& x = args.inputs[0];
  const Tensor& out = args.outputs[0];
  auto dims = normalize_dims(args.attrs.get_ints("dims", {}), x.dim());
  ref::ReductionPlan plan(x.shape(), dims);
  bool exact_int = !is_floating(out.dtype()) && (op.kind == Kind::kSum || op.kind == Kind::kProd ||
                                                 op.kind == Kind::kAmax || op.kind == Kind::kAmin);
  if (exact_int) {
    auto v = ref::load_i64(x);
    std::vector<int64_t> r(static_cast<size_t>(plan.outer));
    for (int64_t o = 0; o < plan.outer; ++o) {
      auto idx = plan.indices(o);
      uint64_t acc = op.kind == Kind::kProd ? 1 : 0;
      int64_t best = idx.empty() ? 0 : v[idx[0]];
      for (int64_t i : idx) {
        if (op.kind == Kind::kSum)
          acc += static_cast<uint64_t>(v[i]);
        else if (op.kind == Kind::kProd)
          acc *= static_cast<uint64_t>(v[i]);
        else
          best = op.kind == Kind::kAmax ? std::max(best, v[i]) : std::min(best, v[i]);
      }
      r[o] = (op.kind == Kind::kAmax || op.kind == Kind::kAmin) ? best : static_cast<int64_t>(acc);
    }
    ref::store_i64(out, r);
    return;
  }
  auto v = ref::load(x);
  std::vector<double> r(static_cast<size_t>(plan.outer)), vals;
  for (int64_t o = 0; o < plan.outer; ++o) {
    auto idx = plan.indices(o);
    vals.resize(idx.size());
    for (size_t k = 0; k < idx.size(); ++k) vals[k] = v[idx[k]];
    r[o] = reduce_values(op.kind, vals, args.attrs);
  }
  ref::store(out, r);
}

OpSchema dim_schema(const char* name, std::vector<DType> dtypes, const char* attrs, const char* doc,
                    std::vector<std::string> outputs) {
  OpSchema s;
  s.name = name;
  s.family = "reduction";
  s.inputs = {"input"};
  s.outputs = std::move(outputs);
  s.attrs = {attrs};
  s.dtypes = std::move(dtypes);
  s.doc = doc;
  return s;
}

// max/min over one dim with indices, argmax/argmin (first index on ties; NaN wins).
void register_arg_reductions(Registry& registry) {
  for (const char* name : {"max", "min", "argmax", "argmin"}) {
    std::string n = name;
    bool is_max = n == "max" || n == "argmax";
    bool with_values = n == "max" || n == "min";
    OpSchema s =
        dim_schema(name, numeric_types(), with_values ? "dim keepdim=false" : "dim? keepdim=false",
                   with_values ? "values and first index of the extreme along dim; NaN propagates"
                               : "index of the first extreme (over all elements without dim)",
                   with_values ? std::vector<std::string>{"values", "indices"}
                               : std::vector<std::string>{"indices"});
    s.infer = [with_values](const std::vector<Tensor>& in, const Attrs& attrs) {
      check_dtype_in(in[0], "input", numeric_types());
      bool keepdim = attrs.get_bool("keepdim", false);
      std::vector<OutputSpec> out;
      if (!attrs.has("dim")) {
        FS_CHECK(!with_values, kInvalidArgument,
                 "missing required attribute 'dim' (use amax/amin to reduce everything)");
        FS_CHECK(in[0].numel() > 0, kInvalidArgument, "cannot reduce an empty tensor ",
                 in[0].describe());
        out.push_back({keepdim ? Shape(in[0].dim(), 1) : Shape{}, DType::kI64});
        return out;
      }
      int d = normalize_dim(attrs.get_int("dim", 0), in[0].dim());
      FS_CHECK(in[0].dim() == 0 || in[0].size(d) > 0, kInvalidArgument, "cannot reduce dim ", d,
               " of size 0 in ", in[0].describe());
      Shape shape = reduced_shape(in[0].shape(), {d}, keepdim);
      if (in[0].dim() == 0) shape = {};
      if (with_values) out.push_back({shape, in[0].dtype()});
      out.push_back({shape, DType::kI64});
      return out;
    };
    s.reference = [is_max, with_values](KernelArgs& args) {
      const Tensor& x = args.inputs[0];
      std::vector<int> dims;
      if (args.attrs.has("dim") && x.dim() > 0)
        dims = {normalize_dim(args.attrs.get_int("dim", 0), x.dim())};
      else
        for (int i = 0; i < x.dim(); ++i) dims.push_back(i);
      ref::ReductionPlan plan(x.shape(), dims);
      auto v = ref::load(x);
      std::vector<double> values(static_cast<size_t>(plan.outer));
      std::vector<int64_t> indices(static_cast<size_t>(plan.outer));
      for (int64_t o = 0; o < plan.outer; ++o) {
        auto idx = plan.indices(o);
        int64_t best = 0;
        for (int64_t k = 1; k < static_cast<int64_t>(idx.size()); ++k) {
          double b = v[idx[best]], c = v[idx[k]];
          if (std::isnan(b)) break;
          if (std::isnan(c) || (is_max ? c > b : c < b)) best = k;
        }
        values[o] = v[idx[best]];
        indices[o] = best;
      }
      if (with_values) {
        if (is_floating(x.dtype())) {
          ref::store(args.outputs[0], values);
        } else {
          auto vi = ref::load_i64(x);
          std::vector<int64_t> exact(values.size());
          for (int64_t o = 0; o < plan.outer; ++o) exact[o] = vi[plan.indices(o)[indices[o]]];
          ref::store_i64(args.outputs[0], exact);
        }
      }
      ref::store_i64(args.outputs[with_values ? 1 : 0], indices);
    };
    registry.add_schema(std::move(s));
  }
}

// cumsum/cumprod along one dim; cummax/cummin with indices (ties take the later index, NaN sticks).
void register_scans(Registry& registry) {
  for (const char* name : {"cumsum", "cumprod", "cummax", "cummin"}) {
    std::string n = name;
    bool extreme = n == "cummax" || n == "cummin";
    OpSchema s = dim_schema(
        name, extreme ? numeric_types() : all_plain_types(), extreme ? "dim" : "dim dtype?",
        extreme ? "running extreme and its index along dim"
                : "running sum/product along dim (ints -> i64)",
        extreme ? std::vector<std::string>{"values", "indices"} : std::vector<std::string>{"out"});
    s.family = "scan";
    std::vector<DType> allowed = s.dtypes;
    s.infer = [extreme, allowed](const std::vector<Tensor>& in, const Attrs& attrs) {
      check_dtype_in(in[0], "input", allowed);
      normalize_dim(attrs.int_at("dim"), in[0].dim());
      std::vector<OutputSpec> out;
      if (extreme) {
        out.push_back({in[0].shape(), in[0].dtype()});
        out.push_back({in[0].shape(), DType::kI64});
      } else {
        DType d = attrs.has("dtype") ? attr_dtype(attrs, in[0].dtype())
                                     : (is_floating(in[0].dtype()) ? in[0].dtype() : DType::kI64);
        out.push_back({in[0].shape(), d});
      }
      return out;
    };
    s.reference = [n, extreme](KernelArgs& args) {
      const Tensor& x = args.inputs[0];
      std::vector<int> dims;
      if (x.dim() > 0) dims = {normalize_dim(args.attrs.get_int("dim", 0), x.dim())};
      ref::ReductionPlan plan(x.shape(), dims);
      const Tensor& out = args.outputs[0];
      bool exact = !is_floating(out.dtype());
      auto v = ref::load(x);
      auto vi = ref::load_i64(x);
      std::vector<double> r(v.size());
      std::vector<int64_t> ri(v.size()), rix(v.size());
      for (int64_t o = 0; o < plan.outer; ++o) {
        auto idx = plan.indices(o);
        double acc = n == "cumprod" ? 1 : 0;
        uint64_t acci = n == "cumprod" ? 1 : 0;
        int64_t best = 0;
        for (int64_t k = 0; k < static_cast<int64_t>(idx.size()); ++k) {
          int64_t i = idx[k];
          if (extreme) {
            double b = v[idx[best]], c = v[i];
            bool better = n == "cummax" ? c >= b : c <= b;
            if (k == 0 || (!std::isnan(b) && (std::isnan(c) || better))) best = k;
            r[i] = v[idx[best]];
            ri[i] = vi[idx[best]];
            rix[i] = best;
          } else if (n == "cumsum") {
            acc += v[i], acci += static_cast<uint64_t>(vi[i]);
            r[i] = acc, ri[i] = static_cast<int64_t>(acci);
          } else {
            acc *= v[i], acci *= static_cast<uint64_t>(vi[i]);
            r[i] = acc, ri[i] = static_cast<int64_t>(acci);
          }
        }
      }
      if (exact)
        ref::store_i64(out, ri);
      else
        ref::store(out, r);
      if (extreme) ref::store_i64(args.outputs[1], rix);
    };
    registry.add_schema(std::move(s));
  }
}

}  // namespace

void register_reduction_ops(Registry& registry) {
  for (const ReduceOp& op : reduce_ops()) {
    OpSchema s = dim_schema(op.name, op.dtypes, op.attrs, op.doc, {"out"});
    const ReduceOp* p = &op;
    s.infer = [p](const std::vector<Tensor>& in, const Attrs& attrs) {
      check_dtype_in(in[0], "input", p->dtypes);
      auto dims = normalize_dims(attrs.get_ints("dims", {}), in[0].dim());
      if (p->kind == Kind::kAmax || p->kind == Kind::kAmin) {
        for (int d : dims)
          FS_CHECK(in[0].size(d) > 0, kInvalidArgument, "cannot reduce dim ", d, " of size 0 in ",
                   in[0].describe());
        FS_CHECK(in[0].numel() > 0, kInvalidArgument, "cannot reduce the empty tensor ",
                 in[0].describe());
      }
      if (p->kind == Kind::kNorm) norm_p(attrs);
      return std::vector<OutputSpec>{
          {reduced_shape(in[0].shape(), dims, attrs.get_bool("keepdim", false)),
           reduce_out_dtype(p->kind, in[0].dtype(), attrs)}};
    };
    s.reference = [p](KernelArgs& args) { reduce_reference(*p, args); };
    registry.add_schema(std::move(s));
  }
  register_arg_reductions(registry);
  register_scans(registry);
}

}  // namespace flagstone::ops
