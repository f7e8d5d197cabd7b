// Binary (and ternary) elementwise ops with broadcasting and torch type promotion: schemas and
// float64 references. Integer arithmetic is exact in int64 and wraps to the result's width.
#include <cmath>

#include "internal.h"
#include "reference/host.h"
#include "shape_rules.h"

namespace flagstone::ops {
namespace {

enum class Out { kPromote, kFloat, kBool };

using FloatFn = double (*)(double, double, const Attrs&);
using IntFn = int64_t (*)(int64_t, int64_t, const Attrs&, DType);

struct BinaryOp {
  const char* name;
  std::vector<DType> dtypes;  // allowed compute (promoted) dtypes
  Out out;
  FloatFn f;
  IntFn i;
  const char* attrs;
  const char* doc;
};

int dtype_bits(DType d) {
  return static_cast<int>(dtype_size(d) * 8);
}

double floor_div(double a, double b) {
  if (b == 0) return a / b;
  double mod = std::fmod(a, b);
  double div = (a - mod) / b;
  if (mod != 0 && (b < 0) != (mod < 0)) div -= 1.0;
  if (div == 0) return std::copysign(0.0, a / b);
  double floordiv = std::floor(div);
  if (div - floordiv > 0.5) floordiv += 1.0;
  return floordiv;
}
int64_t int_floor_div(int64_t a, int64_t b) {
  FS_CHECK(b != 0, kInvalidArgument, "integer division by zero");
  if (a == INT64_MIN && b == -1) return INT64_MIN;
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}
int64_t int_trunc_div(int64_t a, int64_t b) {
  FS_CHECK(b != 0, kInvalidArgument, "integer division by zero");
  if (a == INT64_MIN && b == -1) return INT64_MIN;
  return a / b;
}
double div_f(double a, double b, const Attrs& attrs) {
  std::string mode = attrs.get_string("rounding_mode", "none");
  if (mode == "floor") return floor_div(a, b);
  if (mode == "trunc") return std::trunc(a / b);
  return a / b;
}
int64_t div_i(int64_t a, int64_t b, const Attrs& attrs, DType d) {
  std::string mode = attrs.get_string("rounding_mode", "none");
  // A width-limited dividend: i8 -128 / -1 wraps to -128 after the division.
  a = ref::wrap_to(d, a), b = ref::wrap_to(d, b);
  return mode == "floor" ? int_floor_div(a, b) : int_trunc_div(a, b);
}
double remainder_f(double a, double b, const Attrs&) {
  double mod = std::fmod(a, b);
  if (mod != 0 && ((b < 0) != (mod < 0))) mod += b;
  return mod;
}
int64_t remainder_i(int64_t a, int64_t b, const Attrs&, DType) {
  FS_CHECK(b != 0, kInvalidArgument, "integer remainder by zero");
  if (b == -1) return 0;
  int64_t r = a % b;
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}
int64_t fmod_i(int64_t a, int64_t b, const Attrs&, DType) {
  FS_CHECK(b != 0, kInvalidArgument, "integer fmod by zero");
  return b == -1 ? 0 : a % b;
}
double pow_f(double a, double b, const Attrs&) {
  return std::pow(a, b);
}
int64_t pow_i(int64_t a, int64_t b, const Attrs&, DType) {
  FS_CHECK(b >= 0, kInvalidArgument, "integers to negative integer powers are not allowed");
  uint64_t result = 1, base = static_cast<uint64_t>(a);
  for (uint64_t e = static_cast<uint64_t>(b); e; e >>= 1) {
    if (e & 1) result *= base;
    base *= base;
  }
  return static_cast<int64_t>(result);
}
double max_f(double a, double b, const Attrs&) {
  if (std::isnan(a) || std::isnan(b)) return std::nan("");
  return std::max(a, b);
}
double min_f(double a, double b, const Attrs&) {
  if (std::isnan(a) || std::isnan(b)) return std::nan("");
  return std::min(a, b);
}
uint64_t u(int64_t v) {
  return static_cast<uint64_t>(v);
}
int64_t s(uint64_t v) {
  return static_cast<int64_t>(v);
}
// torch's shifts: out-of-range amounts give 0 (left) or the sign fill (right).
int64_t shl_i(int64_t a, int64_t b, const Attrs&, DType d) {
  if (b < 0 || b >= dtype_bits(d)) return 0;
  return s(u(a) << b);
}
int64_t shr_i(int64_t a, int64_t b, const Attrs&, DType d) {
  int bits = dtype_bits(d);
  if (b < 0 || b >= bits) b = bits - 1;
  return a >> b;  // arithmetic for signed values (a is already wrapped to the dtype)
}

std::vector<DType> numeric() {
  return numeric_types();
}
std::vector<DType> all() {
  return all_plain_types();
}

const std::vector<BinaryOp>& binary_ops() {
  static const std::vector<BinaryOp> ops = {
      {"add", all(), Out::kPromote,
       [](double a, double b, const Attrs& t) { return a + t.get_double("alpha", 1) * b; },
       [](int64_t a, int64_t b, const Attrs& t, DType) {
         return s(u(a) + u(b) * u(t.get_int("alpha", 1)));
       },
       "alpha=1", "a + alpha*b"},
      {"sub", numeric(), Out::kPromote,
       [](double a, double b, const Attrs& t) { return a - t.get_double("alpha", 1) * b; },
       [](int64_t a, int64_t b, const Attrs& t, DType) {
         return s(u(a) - u(b) * u(t.get_int("alpha", 1)));
       },
       "alpha=1", "a - alpha*b"},
      {"mul", all(), Out::kPromote, [](double a, double b, const Attrs&) { return a * b; },
       [](int64_t a, int64_t b, const Attrs&, DType) { return s(u(a) * u(b)); }, "", "a * b"},
      {"div", all(), Out::kPromote, div_f, div_i, "rounding_mode=none|floor|trunc",
       "a / b (ints -> f32 unless rounded)"},
      {"floor_divide", numeric(), Out::kPromote,
       [](double a, double b, const Attrs&) { return floor_div(a, b); },
       [](int64_t a, int64_t b, const Attrs&, DType d) {
         return int_floor_div(ref::wrap_to(d, a), ref::wrap_to(d, b));
       },
       "", "floor(a / b)"},
      {"pow", numeric(), Out::kPromote, pow_f, pow_i, "", "a ^ b"},
      {"maximum", all(), Out::kPromote, max_f,
       [](int64_t a, int64_t b, const Attrs&, DType) { return std::max(a, b); }, "",
       "max, NaN propagates"},
      {"minimum", all(), Out::kPromote, min_f,
       [](int64_t a, int64_t b, const Attrs&, DType) { return std::min(a, b); }, "",
       "min, NaN propagates"},
      {"fmod", numeric(), Out::kPromote,
       [](double a, double b, const Attrs&) { return std::fmod(a, b); }, fmod_i, "",
       "C fmod (sign of a)"},
      {"remainder", numeric(), Out::kPromote, remainder_f, remainder_i, "",
       "Python modulo (sign of b)"},
      {"atan2", all(), Out::kFloat,
       [](double a, double b, const Attrs&) { return std::atan2(a, b); }, nullptr, "",
       "atan2(a, b)"},
      {"eq", all(), Out::kBool, [](double a, double b, const Attrs&) { return double(a == b); },
       [](int64_t a, int64_t b, const Attrs&, DType) { return int64_t(a == b); }, "", "a == b"},
      {"ne", all(), Out::kBool, [](double a, double b, const Attrs&) { return double(a != b); },
       [](int64_t a, int64_t b, const Attrs&, DType) { return int64_t(a != b); }, "", "a != b"},
      {"lt", all(), Out::kBool, [](double a, double b, const Attrs&) { return double(a < b); },
       [](int64_t a, int64_t b, const Attrs&, DType) { return int64_t(a < b); }, "", "a < b"},
      {"le", all(), Out::kBool, [](double a, double b, const Attrs&) { return double(a <= b); },
       [](int64_t a, int64_t b, const Attrs&, DType) { return int64_t(a <= b); }, "", "a <= b"},
      {"gt", all(), Out::kBool, [](double a, double b, const Attrs&) { return double(a > b); },
       [](int64_t a, int64_t b, const Attrs&, DType) { return int64_t(a > b); }, "", "a > b"},
      {"ge", all(), Out::kBool, [](double a, double b, const Attrs&) { return double(a >= b); },
       [](int64_t a, int64_t b, const Attrs&, DType) { return int64_t(a >= b); }, "", "a >= b"},
      {"logical_and", all(), Out::kBool,
       [](double a, double b, const Attrs&) { return double(a != 0 && b != 0); }, nullptr, "",
       "a && b"},
      {"logical_or", all(), Out::kBool,
       [](double a, double b, const Attrs&) { return double(a != 0 || b != 0); }, nullptr, "",
       "a || b"},
      {"logical_xor", all(), Out::kBool,
       [](double a, double b, const Attrs&) { return double((a != 0) != (b != 0)); }, nullptr, "",
       "a != b as bools"},
      {"bitwise_and", int_and_bool_types(), Out::kPromote, nullptr,
       [](int64_t a, int64_t b, const Attrs&, DType) { return a & b; }, "", "a & b"},
      {"bitwise_or", int_and_bool_types(), Out::kPromote, nullptr,
       [](int64_t a, int64_t b, const Attrs&, DType) { return a | b; }, "", "a | b"},
      {"bitwise_xor", int_and_bool_types(), Out::kPromote, nullptr,
       [](int64_t a, int64_t b, const Attrs&, DType) { return a ^ b; }, "", "a ^ b"},
      {"bitwise_left_shift", kIntTypes, Out::kPromote, nullptr, shl_i, "", "a << b"},
      {"bitwise_right_shift", kIntTypes, Out::kPromote, nullptr, shr_i, "", "a >> b (arithmetic)"},
  };
  return ops;
}

DType binary_out_dtype(const BinaryOp& op, DType compute, const Attrs& attrs) {
  if (op.out == Out::kBool) return DType::kBool;
  if (op.out == Out::kFloat) return to_float_dtype(compute);
  if (std::string_view(op.name) == "div" && attrs.get_string("rounding_mode", "none") == "none")
    return to_float_dtype(compute);
  return compute;
}

void binary_reference(const BinaryOp& op, KernelArgs& args) {
  const Tensor& a = args.inputs[0];
  const Tensor& b = args.inputs[1];
  const Tensor& out = args.outputs[0];
  DType compute = result_type({a, b});
  ref::BroadcastIndex ia(a.shape(), out.shape()), ib(b.shape(), out.shape());
  int64_t n = out.numel();
  bool int_compute = !is_floating(compute);
  if (int_compute && op.i && (is_floating(out.dtype()) == false)) {
    auto va = ref::load_i64(a), vb = ref::load_i64(b);
    std::vector<int64_t> r(static_cast<size_t>(n));
    for (int64_t k = 0; k < n; ++k) {
      int64_t x = ref::wrap_to(compute, va[ia(k)]), y = ref::wrap_to(compute, vb[ib(k)]);
      r[k] = ref::wrap_to(out.dtype(), op.i(x, y, args.attrs, compute));
    }
    ref::store_i64(out, r);
    return;
  }
  // Inputs are first rounded to the compute dtype, as torch converts before computing.
  auto va = ref::load(a), vb = ref::load(b);
  DType fdtype = is_floating(compute) ? compute : out.dtype();
  std::vector<double> r(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k)
    r[k] = op.f(ref::round_to(fdtype, va[ia(k)]), ref::round_to(fdtype, vb[ib(k)]), args.attrs);
  ref::store(out, r);
}

OpSchema ternary_schema(const char* name, std::vector<std::string> inputs, const char* attrs,
                        const char* doc) {
  OpSchema s;
  s.name = name;
  s.family = "binary";
  s.inputs = std::move(inputs);
  s.outputs = {"out"};
  if (*attrs) s.attrs = {attrs};
  s.doc = doc;
  return s;
}

}  // namespace

void register_binary_ops(Registry& registry) {
  for (const BinaryOp& op : binary_ops()) {
    OpSchema s;
    s.name = op.name;
    s.family = "binary";
    s.inputs = {"input", "other"};
    s.outputs = {"out"};
    if (*op.attrs) s.attrs = {op.attrs};
    s.dtypes = op.dtypes;
    s.doc = op.doc;
    const BinaryOp* p = &op;
    s.infer = [p](const std::vector<Tensor>& in, const Attrs& attrs) {
      DType compute = result_type({in[0], in[1]});
      FS_CHECK(std::find(p->dtypes.begin(), p->dtypes.end(), compute) != p->dtypes.end(),
               kInvalidArgument, "inputs ", in[0].describe(), " and ", in[1].describe(),
               " compute in ", dtype_name(compute), ", which this op does not support");
      std::string_view name = p->name;
      if (name == "sub") {
        FS_CHECK(compute != DType::kBool, kInvalidArgument,
                 "subtracting bool tensors is not supported; use logical_xor");
      }
      if (name == "div") {
        std::string mode = attrs.get_string("rounding_mode", "none");
        FS_CHECK(mode == "none" || mode == "floor" || mode == "trunc", kInvalidArgument,
                 "rounding_mode='", mode, "' (expected none, floor or trunc)");
      }
      return std::vector<OutputSpec>{
          {broadcast_shapes(in[0].shape(), in[1].shape()), binary_out_dtype(*p, compute, attrs)}};
    };
    s.reference = [p](KernelArgs& args) { binary_reference(*p, args); };
    registry.add_schema(std::move(s));
  }

  // where(condition, input, other): torch.where.
  OpSchema where = ternary_schema("where", {"condition", "input", "other"}, "",
                                  "input where condition else other");
  where.dtypes = all_plain_types();
  where.dispatch_input = 1;
  where.infer = [](const std::vector<Tensor>& in, const Attrs&) {
    FS_CHECK(in[0].dtype() == DType::kBool, kInvalidArgument, "tensor 'condition' is ",
             in[0].describe(), "; where needs a bool condition");
    return std::vector<OutputSpec>{{broadcast_all(in), result_type({in[1], in[2]})}};
  };
  where.reference = [](KernelArgs& args) {
    const Tensor& out = args.outputs[0];
    auto c = ref::load_i64(args.inputs[0]);
    ref::BroadcastIndex ic(args.inputs[0].shape(), out.shape()),
        ia(args.inputs[1].shape(), out.shape()), ib(args.inputs[2].shape(), out.shape());
    if (is_floating(out.dtype())) {
      auto a = ref::load(args.inputs[1]), b = ref::load(args.inputs[2]);
      std::vector<double> r(static_cast<size_t>(out.numel()));
      for (int64_t k = 0; k < out.numel(); ++k) r[k] = c[ic(k)] ? a[ia(k)] : b[ib(k)];
      ref::store(out, r);
    } else {
      auto a = ref::load_i64(args.inputs[1]), b = ref::load_i64(args.inputs[2]);
      std::vector<int64_t> r(static_cast<size_t>(out.numel()));
      for (int64_t k = 0; k < out.numel(); ++k) r[k] = c[ic(k)] ? a[ia(k)] : b[ib(k)];
      ref::store_i64(out, r);
    }
  };
  registry.add_schema(std::move(where));

  // lerp(start, end, weight), addcmul(input, t1, t2), addcdiv(input, t1, t2): float, one dtype.
  struct Fma {
    const char* name;
    const char* attrs;
    const char* doc;
    double (*f)(double, double, double, double);
  };
  static const Fma fmas[] = {
      {"lerp", "", "start + weight*(end-start), torch's two-sided formula",
       [](double s, double e, double w, double) {
         return w < 0.5 ? s + w * (e - s) : e - (e - s) * (1 - w);
       }},
      {"addcmul", "value=1", "input + value*t1*t2",
       [](double x, double a, double b, double v) { return x + v * a * b; }},
      {"addcdiv", "value=1", "input + value*t1/t2",
       [](double x, double a, double b, double v) { return x + v * a / b; }},
  };
  for (const Fma& fma : fmas) {
    std::string name = fma.name;
    OpSchema s =
        ternary_schema(fma.name,
                       name == "lerp" ? std::vector<std::string>{"input", "end", "weight"}
                                      : std::vector<std::string>{"input", "tensor1", "tensor2"},
                       fma.attrs, fma.doc);
    s.dtypes = kFloatTypes;
    s.infer = [](const std::vector<Tensor>& in, const Attrs&) {
      check_dtype_in(in[0], "input", kFloatTypes);
      check_same_dtype(in[0], "input", in[1], "tensor1");
      check_same_dtype(in[0], "input", in[2], "tensor2");
      return std::vector<OutputSpec>{{broadcast_all(in), in[0].dtype()}};
    };
    auto f = fma.f;
    s.reference = [f](KernelArgs& args) {
      const Tensor& out = args.outputs[0];
      auto x = ref::load(args.inputs[0]), a = ref::load(args.inputs[1]),
           b = ref::load(args.inputs[2]);
      ref::BroadcastIndex ix(args.inputs[0].shape(), out.shape()),
          ia(args.inputs[1].shape(), out.shape()), ib(args.inputs[2].shape(), out.shape());
      double v = args.attrs.get_double("value", 1.0);
      std::vector<double> r(static_cast<size_t>(out.numel()));
      for (int64_t k = 0; k < out.numel(); ++k) r[k] = f(x[ix(k)], a[ia(k)], b[ib(k)], v);
      ref::store(out, r);
    };
    registry.add_schema(std::move(s));
  }
}

}  // namespace flagstone::ops
