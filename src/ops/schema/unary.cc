// Unary elementwise ops: schemas and float64 references. Integer inputs of float-only math
// (exp, sin, sigmoid...) compute in f32 as torch does; integer-preserving ops (abs, neg, clamp,
// floor...) compute exactly in int64 and wrap to the input's width.
#include <cmath>
#include <limits>

#include "internal.h"
#include "reference/host.h"
#include "shape_rules.h"

namespace flagstone::ops {
namespace {

enum class Out { kSame, kFloat, kBool };

using FloatFn = double (*)(double, const Attrs&);
using IntFn = int64_t (*)(int64_t, const Attrs&);

struct UnaryOp {
  const char* name;
  std::vector<DType> dtypes;
  Out out;
  FloatFn f;
  IntFn i;  // exact integer path (nullptr: integers go through `f`)
  const char* attrs;
  const char* doc;
};

double sigmoid(double x) {
  return 1.0 / (1.0 + std::exp(-x));
}
double softplus(double x, double beta, double threshold) {
  return x * beta > threshold ? x : std::log1p(std::exp(beta * x)) / beta;
}
double gelu(double x, const Attrs& a) {
  std::string mode = a.get_string("approximate", "none");
  if (mode == "tanh") {
    double inner = std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x);
    return 0.5 * x * (1.0 + std::tanh(inner));
  }
  return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
}
// torch.clamp: NaN propagates, and min > max yields max.
double clamp_f(double x, const Attrs& a) {
  if (std::isnan(x)) return x;
  if (a.has("min")) {
    double lo = a.get_double("min", 0);
    if (std::isnan(lo)) return lo;
    x = std::max(x, lo);
  }
  if (a.has("max")) {
    double hi = a.get_double("max", 0);
    if (std::isnan(hi)) return hi;
    x = std::min(x, hi);
  }
  return x;
}
int64_t clamp_i(int64_t x, const Attrs& a) {
  if (a.has("min"))
    x = std::max<int64_t>(x, static_cast<int64_t>(std::ceil(a.get_double("min", 0))));
  if (a.has("max"))
    x = std::min<int64_t>(x, static_cast<int64_t>(std::floor(a.get_double("max", 0))));
  return x;
}
double round_f(double x, const Attrs& a) {
  int64_t decimals = a.get_int("decimals", 0);
  if (decimals == 0) return std::nearbyint(x);  // half to even in the default rounding mode
  double scale = std::pow(10.0, static_cast<double>(decimals));
  return std::nearbyint(x * scale) / scale;
}
int64_t ipow(int64_t base, int64_t exp) {
  FS_CHECK(exp >= 0, kInvalidArgument, "integers to negative integer powers are not allowed");
  uint64_t result = 1, b = static_cast<uint64_t>(base);
  for (uint64_t e = static_cast<uint64_t>(exp); e; e >>= 1) {
    if (e & 1) result *= b;
    b *= b;
  }
  return static_cast<int64_t>(result);
}

std::vector<DType> floats_ints() {
  return numeric_types();
}
std::vector<DType> floats_ints_bool() {
  return all_plain_types();
}

const std::vector<UnaryOp>& unary_ops() {
  static const std::vector<UnaryOp> ops = {
      {"abs", floats_ints(), Out::kSame, [](double x, const Attrs&) { return std::fabs(x); },
       [](int64_t x, const Attrs&) {
         return x < 0 ? static_cast<int64_t>(0 - static_cast<uint64_t>(x)) : x;
       },
       "", "|x|"},
      {"neg", floats_ints(), Out::kSame, [](double x, const Attrs&) { return -x; },
       [](int64_t x, const Attrs&) { return static_cast<int64_t>(0 - static_cast<uint64_t>(x)); },
       "", "-x"},
      {"exp", floats_ints_bool(), Out::kFloat, [](double x, const Attrs&) { return std::exp(x); },
       nullptr, "", "e^x"},
      {"exp2", floats_ints_bool(), Out::kFloat, [](double x, const Attrs&) { return std::exp2(x); },
       nullptr, "", "2^x"},
      {"log", floats_ints_bool(), Out::kFloat, [](double x, const Attrs&) { return std::log(x); },
       nullptr, "", "natural log"},
      {"log2", floats_ints_bool(), Out::kFloat, [](double x, const Attrs&) { return std::log2(x); },
       nullptr, "", "base-2 log"},
      {"log1p", floats_ints_bool(), Out::kFloat,
       [](double x, const Attrs&) { return std::log1p(x); }, nullptr, "", "log(1+x)"},
      {"expm1", floats_ints_bool(), Out::kFloat,
       [](double x, const Attrs&) { return std::expm1(x); }, nullptr, "", "e^x-1"},
      {"sqrt", floats_ints_bool(), Out::kFloat, [](double x, const Attrs&) { return std::sqrt(x); },
       nullptr, "", "square root"},
      {"rsqrt", floats_ints_bool(), Out::kFloat,
       [](double x, const Attrs&) { return 1.0 / std::sqrt(x); }, nullptr, "", "1/sqrt(x)"},
      {"reciprocal", floats_ints_bool(), Out::kFloat,
       [](double x, const Attrs&) { return 1.0 / x; }, nullptr, "", "1/x"},
      {"sin", floats_ints_bool(), Out::kFloat, [](double x, const Attrs&) { return std::sin(x); },
       nullptr, "", "sine"},
      {"cos", floats_ints_bool(), Out::kFloat, [](double x, const Attrs&) { return std::cos(x); },
       nullptr, "", "cosine"},
      {"tan", floats_ints_bool(), Out::kFloat, [](double x, const Attrs&) { return std::tan(x); },
       nullptr, "", "tangent"},
      {"tanh", floats_ints_bool(), Out::kFloat, [](double x, const Attrs&) { return std::tanh(x); },
       nullptr, "", "hyperbolic tangent"},
      {"sigmoid", floats_ints_bool(), Out::kFloat,
       [](double x, const Attrs&) { return sigmoid(x); }, nullptr, "", "1/(1+e^-x)"},
      {"erf", floats_ints_bool(), Out::kFloat, [](double x, const Attrs&) { return std::erf(x); },
       nullptr, "", "error function"},
      {"relu", floats_ints(), Out::kSame,
       [](double x, const Attrs&) { return std::isnan(x) ? x : std::max(x, 0.0); },
       [](int64_t x, const Attrs&) { return std::max<int64_t>(x, 0); }, "",
       "max(x, 0); NaN stays NaN"},
      {"leaky_relu", kFloatTypes, Out::kSame,
       [](double x, const Attrs& a) {
         return x > 0 ? x : x * a.get_double("negative_slope", 0.01);
       },
       nullptr, "negative_slope=0.01", "x or slope*x"},
      {"elu", kFloatTypes, Out::kSame,
       [](double x, const Attrs& a) {
         return x > 0 ? x : a.get_double("alpha", 1.0) * std::expm1(x);
       },
       nullptr, "alpha=1", "x or alpha*(e^x-1)"},
      {"gelu", kFloatTypes, Out::kSame, gelu, nullptr, "approximate=none|tanh",
       "Gaussian error linear unit"},
      {"silu", kFloatTypes, Out::kSame, [](double x, const Attrs&) { return x * sigmoid(x); },
       nullptr, "", "x*sigmoid(x)"},
      {"mish", kFloatTypes, Out::kSame,
       [](double x, const Attrs&) { return x * std::tanh(softplus(x, 1, 20)); }, nullptr, "",
       "x*tanh(softplus(x))"},
      {"softplus", kFloatTypes, Out::kSame,
       [](double x, const Attrs& a) {
         return softplus(x, a.get_double("beta", 1), a.get_double("threshold", 20));
       },
       nullptr, "beta=1 threshold=20", "log(1+e^(beta x))/beta"},
      {"hardswish", kFloatTypes, Out::kSame,
       [](double x, const Attrs&) { return x * std::min(std::max(x + 3.0, 0.0), 6.0) / 6.0; },
       nullptr, "", "x*relu6(x+3)/6"},
      {"floor", floats_ints(), Out::kSame, [](double x, const Attrs&) { return std::floor(x); },
       [](int64_t x, const Attrs&) { return x; }, "", "round down"},
      {"ceil", floats_ints(), Out::kSame, [](double x, const Attrs&) { return std::ceil(x); },
       [](int64_t x, const Attrs&) { return x; }, "", "round up"},
      {"round", floats_ints(), Out::kSame, round_f, [](int64_t x, const Attrs&) { return x; },
       "decimals=0", "round half to even"},
      {"trunc", floats_ints(), Out::kSame, [](double x, const Attrs&) { return std::trunc(x); },
       [](int64_t x, const Attrs&) { return x; }, "", "round toward zero"},
      {"sign", floats_ints(), Out::kSame,
       [](double x, const Attrs&) { return static_cast<double>((0 < x) - (x < 0)); },
       [](int64_t x, const Attrs&) { return static_cast<int64_t>((0 < x) - (x < 0)); }, "",
       "-1, 0 or 1 (0 for NaN)"},
      {"clamp", floats_ints(), Out::kSame, clamp_f, clamp_i, "min? max?", "min(max(x, min), max)"},
      {"pow_scalar", floats_ints(), Out::kSame,
       [](double x, const Attrs& a) { return std::pow(x, a.double_at("exponent")); },
       [](int64_t x, const Attrs& a) { return ipow(x, a.int_at("exponent")); }, "exponent",
       "x^exponent"},
      {"nan_to_num", floats_ints_bool(), Out::kSame, nullptr,
       [](int64_t x, const Attrs&) { return x; }, "nan=0 posinf? neginf?",
       "replace NaN and infinities"},
      {"isnan", floats_ints_bool(), Out::kBool,
       [](double x, const Attrs&) { return std::isnan(x) ? 1.0 : 0.0; }, nullptr, "", "x != x"},
      {"isinf", floats_ints_bool(), Out::kBool,
       [](double x, const Attrs&) { return std::isinf(x) ? 1.0 : 0.0; }, nullptr, "", "|x| == inf"},
      {"isfinite", floats_ints_bool(), Out::kBool,
       [](double x, const Attrs&) { return std::isfinite(x) ? 1.0 : 0.0; }, nullptr, "",
       "neither NaN nor inf"},
      {"logical_not", floats_ints_bool(), Out::kBool,
       [](double x, const Attrs&) { return x == 0 ? 1.0 : 0.0; }, nullptr, "", "x == 0"},
      {"bitwise_not", int_and_bool_types(), Out::kSame, nullptr,
       [](int64_t x, const Attrs&) { return ~x; }, "", "~x (not for bool)"},
  };
  return ops;
}

double max_finite(DType d) {
  switch (d) {
    case DType::kF16:
      return 65504.0;
    case DType::kBF16:
      return 3.3895313892515355e38;
    case DType::kF32:
      return std::numeric_limits<float>::max();
    default:
      return std::numeric_limits<double>::max();
  }
}

// pow_scalar keeps integer dtypes only for integer exponents, as torch's int ** int does.
DType unary_out_dtype(const UnaryOp& op, DType in, const Attrs& attrs) {
  if (op.out == Out::kBool) return DType::kBool;
  if (op.out == Out::kFloat) return to_float_dtype(in);
  if (std::string_view(op.name) == "pow_scalar" && !is_floating(in)) {
    const auto& v = attrs.items().count("exponent") ? attrs.items().at("exponent").value()
                                                    : AttrValue::Variant{int64_t{1}};
    if (std::holds_alternative<double>(v)) return DType::kF32;
  }
  return in;
}

void unary_reference(const UnaryOp& op, KernelArgs& args) {
  const Tensor& x = args.inputs[0];
  const Tensor& out = args.outputs[0];
  std::string_view name = op.name;
  bool int_path = !is_floating(x.dtype()) && !is_floating(out.dtype()) && op.out != Out::kBool;
  if (name == "bitwise_not" && x.dtype() == DType::kBool) {
    auto v = ref::load_i64(x);
    for (auto& e : v) e = !e;
    ref::store_i64(out, v);
    return;
  }
  if (int_path && op.i) {
    auto v = ref::load_i64(x);
    for (auto& e : v) e = ref::wrap_to(out.dtype(), op.i(e, args.attrs));
    ref::store_i64(out, v);
    return;
  }
  auto v = ref::load(x);
  if (name == "nan_to_num") {
    double big = max_finite(out.dtype());
    double nan = args.attrs.get_double("nan", 0.0);
    double posinf = args.attrs.get_double("posinf", big);
    double neginf = args.attrs.get_double("neginf", -big);
    for (auto& e : v) e = std::isnan(e) ? nan : (std::isinf(e) ? (e > 0 ? posinf : neginf) : e);
  } else {
    for (auto& e : v) e = op.f(e, args.attrs);
  }
  ref::store(out, v);
}

}  // namespace

void register_unary_ops(Registry& registry) {
  for (const UnaryOp& op : unary_ops()) {
    OpSchema s;
    s.name = op.name;
    s.family = "unary";
    s.inputs = {"input"};
    s.outputs = {"out"};
    if (*op.attrs) s.attrs = {op.attrs};
    s.dtypes = op.dtypes;
    s.doc = op.doc;
    const UnaryOp* p = &op;
    s.infer = [p](const std::vector<Tensor>& in, const Attrs& attrs) {
      check_dtype_in(in[0], "input", p->dtypes);
      if (std::string_view(p->name) == "pow_scalar") attrs.double_at("exponent");
      return std::vector<OutputSpec>{{in[0].shape(), unary_out_dtype(*p, in[0].dtype(), attrs)}};
    };
    s.reference = [p](KernelArgs& args) { unary_reference(*p, args); };
    registry.add_schema(std::move(s));
  }

  OpSchema cast;
  cast.name = "cast";
  cast.family = "unary";
  cast.inputs = {"input"};
  cast.outputs = {"out"};
  cast.attrs = {"dtype"};
  cast.dtypes = all_plain_types();
  cast.doc = "convert to another dtype (truncation toward zero for float -> int)";
  cast.infer = [](const std::vector<Tensor>& in, const Attrs& attrs) {
    check_dtype_in(in[0], "input", all_plain_types());
    FS_CHECK(attrs.has("dtype"), kInvalidArgument, "missing required attribute 'dtype'");
    DType to = attr_dtype(attrs, DType::kF32);
    FS_CHECK(!is_quantized(to), kInvalidArgument, "cannot cast to ", dtype_name(to),
             "; use quantize");
    return std::vector<OutputSpec>{{in[0].shape(), to}};
  };
  cast.reference = [](KernelArgs& args) {
    const Tensor& x = args.inputs[0];
    if (is_floating(x.dtype()))
      ref::store(args.outputs[0], ref::load(x));
    else
      ref::store_i64(args.outputs[0], ref::load_i64(x));
  };
  registry.add_schema(std::move(cast));
}

}  // namespace flagstone::ops
