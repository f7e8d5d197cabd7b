// Generated elementwise ops, written once as tile-language bodies in two tables (unary and
// binary) plus where/lerp/addcmul/addcdiv and casts. Float bodies compute in f32; integer and
// bool bodies in their own dtype. Semantics follow the references in src/ops/schema/.
#include <cmath>
#include <limits>

#include "flagstone/ops/dtype_rules.h"
#include "generated/map.h"
#include "generated/math.h"

namespace flagstone::ops::gen {
namespace {

using Vals = std::vector<Value>;

std::vector<DType> concat(std::vector<DType> a, const std::vector<DType>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

const std::vector<DType> kFloatsInts = concat(kGenFloats, kGenInts);
const std::vector<DType> kAllGen = concat(kFloatsInts, {DType::kBool});
const std::vector<DType> kIntsBool = concat(kGenInts, {DType::kBool});

constexpr double kF32Max = std::numeric_limits<float>::max();
constexpr double kInf = std::numeric_limits<double>::infinity();

// An op of the unary table. `fbody` serves float inputs (x widened to f32), `ibody` integer and
// bool inputs (x in its own dtype); `scalars` reads attributes into launch scalars.
struct UnaryEntry {
  const char* op;
  std::vector<DType> dtypes;
  MapBody fbody;
  MapBody ibody;
  std::vector<Scalar> (*scalars)(const KernelArgs& args) = nullptr;
  int (*variant)(const Attrs& attrs) = nullptr;
  std::string (*refuse)(const KernelArgs& args) = nullptr;  // non-empty: let others serve it
};

MapBody f1(Value (*f)(KernelBuilder&, Value)) {
  return [f](KernelBuilder& k, const Vals& x, const Vals&, int) { return f(k, x[0]); };
}

Value identity(KernelBuilder&, Value x) {
  return x;
}

double max_finite(DType d) {
  switch (d) {
    case DType::kF16:
      return 65504.0;
    case DType::kBF16:
      return 3.3895313892515355e38;
    default:
      return kF32Max;
  }
}

const std::vector<UnaryEntry>& unary_table() {
  static const std::vector<UnaryEntry> table = {
      {"abs", kFloatsInts, f1([](KernelBuilder& k, Value x) { return k.abs(x); }),
       f1([](KernelBuilder& k, Value x) { return k.abs(x); })},
      {"neg", kFloatsInts, f1([](KernelBuilder&, Value x) { return -x; }),
       f1([](KernelBuilder&, Value x) { return -x; })},
      {"exp", kGenFloats, f1([](KernelBuilder& k, Value x) { return k.exp(x); }), nullptr},
      {"exp2", kGenFloats, f1([](KernelBuilder& k, Value x) { return k.exp2(x); }), nullptr},
      {"log", kGenFloats, f1([](KernelBuilder& k, Value x) { return k.log(x); }), nullptr},
      {"log2", kGenFloats, f1([](KernelBuilder& k, Value x) { return k.log2(x); }), nullptr},
      {"log1p", kGenFloats, f1(log1p), nullptr},
      {"expm1", kGenFloats, f1(expm1), nullptr},
      {"sqrt", kGenFloats, f1([](KernelBuilder& k, Value x) { return k.sqrt(x); }), nullptr},
      {"rsqrt", kGenFloats, f1([](KernelBuilder& k, Value x) { return k.rsqrt(x); }), nullptr},
      {"reciprocal", kGenFloats, f1([](KernelBuilder&, Value x) { return 1.0f / x; }), nullptr},
      {"sin", kGenFloats, f1([](KernelBuilder& k, Value x) { return k.sin(x); }), nullptr},
      {"cos", kGenFloats, f1([](KernelBuilder& k, Value x) { return k.cos(x); }), nullptr},
      {"tan", kGenFloats, f1([](KernelBuilder& k, Value x) { return k.sin(x) / k.cos(x); }),
       nullptr},
      {"tanh", kGenFloats, f1([](KernelBuilder& k, Value x) { return k.tanh(x); }), nullptr},
      {"sigmoid", kGenFloats, f1(sigmoid), nullptr},
      {"erf", kGenFloats, f1([](KernelBuilder& k, Value x) { return k.erf(x); }), nullptr},
      {"relu", kFloatsInts,
       f1([](KernelBuilder& k, Value x) { return k.where(x < 0.0f, k.literal_like(0.0f, x), x); }),
       f1([](KernelBuilder& k, Value x) { return k.maximum(x, k.literal_like(0, x)); })},
      {"leaky_relu", kGenFloats,
       [](KernelBuilder& k, const Vals& x, const Vals& s, int) {
         return k.where(x[0] > 0.0f, x[0], x[0] * s[0]);
       },
       nullptr,
       [](const KernelArgs& a) {
         return std::vector<Scalar>{Scalar::f32(a.attrs.get_double("negative_slope", 0.01))};
       }},
      {"elu", kGenFloats,
       [](KernelBuilder& k, const Vals& x, const Vals& s, int) {
         return k.where(x[0] > 0.0f, x[0], s[0] * expm1(k, x[0]));
       },
       nullptr,
       [](const KernelArgs& a) {
         return std::vector<Scalar>{Scalar::f32(a.attrs.get_double("alpha", 1.0))};
       }},
      {"gelu", kGenFloats,
       [](KernelBuilder& k, const Vals& x, const Vals&, int tanh_mode) {
         return tanh_mode ? gelu_tanh(k, x[0]) : gelu_erf(k, x[0]);
       },
       nullptr, nullptr,
       [](const Attrs& a) { return a.get_string("approximate", "none") == "tanh" ? 1 : 0; }},
      {"silu", kGenFloats, f1([](KernelBuilder& k, Value x) { return x * sigmoid(k, x); }),
       nullptr},
      {"mish", kGenFloats, f1([](KernelBuilder& k, Value x) {
         return x * k.tanh(softplus(k, x, k.literal_like(1.0f, x), k.literal_like(20.0f, x)));
       }),
       nullptr},
      {"softplus", kGenFloats,
       [](KernelBuilder& k, const Vals& x, const Vals& s, int) {
         return softplus(k, x[0], s[0], s[1]);
       },
       nullptr,
       [](const KernelArgs& a) {
         return std::vector<Scalar>{Scalar::f32(a.attrs.get_double("beta", 1.0)),
                                    Scalar::f32(a.attrs.get_double("threshold", 20.0))};
       }},
      {"hardswish", kGenFloats, f1([](KernelBuilder& k, Value x) {
         return x *
                k.minimum(k.maximum(x + 3.0f, k.literal_like(0.0f, x)), k.literal_like(6.0f, x)) /
                6.0f;
       }),
       nullptr},
      {"floor", kGenFloats, f1([](KernelBuilder& k, Value x) { return k.floor(x); }), f1(identity)},
      {"ceil", kGenFloats, f1([](KernelBuilder& k, Value x) { return k.ceil(x); }), f1(identity)},
      {"round", kGenFloats,
       [](KernelBuilder& k, const Vals& x, const Vals& s, int) {
         return round_half_even(k, x[0] * s[0]) / s[0];
       },
       f1(identity),
       [](const KernelArgs& a) {
         return std::vector<Scalar>{
             Scalar::f32(std::pow(10.0, static_cast<double>(a.attrs.get_int("decimals", 0))))};
       }},
      {"trunc", kGenFloats, f1(trunc), f1(identity)},
      {"sign", kFloatsInts, f1([](KernelBuilder&, Value x) {
         return (x > 0.0f).to(DType::kF32) - (x < 0.0f).to(DType::kF32);
       }),
       f1([](KernelBuilder&, Value x) { return (x > 0).to(x.dtype()) - (x < 0).to(x.dtype()); })},
      {"clamp", kFloatsInts,
       [](KernelBuilder& k, const Vals& x, const Vals& s, int) {
         Value v = k.minimum(k.maximum(x[0], s[0]), s[1]);
         v = k.where(s[1] != s[1], s[1], v);
         v = k.where(s[0] != s[0], s[0], v);
         return k.where(x[0] != x[0], x[0], v);
       },
       [](KernelBuilder& k, const Vals& x, const Vals& s, int) {
         Value v = k.minimum(k.maximum(x[0].to(DType::kI64), s[0]), s[1]);
         return v.to(x[0].dtype());
       },
       [](const KernelArgs& a) {
         if (is_floating(a.inputs[0].dtype()))
           return std::vector<Scalar>{Scalar::f32(a.attrs.get_double("min", -kInf)),
                                      Scalar::f32(a.attrs.get_double("max", kInf))};
         int64_t lo = INT64_MIN, hi = INT64_MAX;
         if (a.attrs.has("min")) lo = static_cast<int64_t>(std::ceil(a.attrs.get_double("min", 0)));
         if (a.attrs.has("max"))
           hi = static_cast<int64_t>(std::floor(a.attrs.get_double("max", 0)));
         return std::vector<Scalar>{Scalar::i64(lo), Scalar::i64(hi)};
       },
       nullptr,
       [](const KernelArgs& a) {
         // Bounds beyond i64 or NaN bounds on integers: the reference handles those.
         for (const char* name : {"min", "max"})
           if (a.attrs.has(name) && !is_floating(a.inputs[0].dtype()) &&
               !(std::fabs(a.attrs.get_double(name, 0)) < 9e18))
             return std::string("integer clamp bound out of range");
         return std::string();
       }},
      {"pow_scalar", kGenFloats,
       [](KernelBuilder& k, const Vals& x, const Vals& s, int) { return k.pow(x[0], s[0]); },
       nullptr,
       [](const KernelArgs& a) {
         return std::vector<Scalar>{Scalar::f32(a.attrs.double_at("exponent"))};
       }},
      {"nan_to_num", kGenFloats,
       [](KernelBuilder& k, const Vals& x, const Vals& s, int) {
         Value v = k.where(x[0] > s[3], s[1], x[0]);
         v = k.where(x[0] < -s[3], s[2], v);
         return k.where(x[0] != x[0], s[0], v);
       },
       f1(identity),
       [](const KernelArgs& a) {
         if (!is_floating(a.inputs[0].dtype())) return std::vector<Scalar>{};
         double big = max_finite(a.outputs[0].dtype());
         return std::vector<Scalar>{Scalar::f32(a.attrs.get_double("nan", 0.0)),
                                    Scalar::f32(a.attrs.get_double("posinf", big)),
                                    Scalar::f32(a.attrs.get_double("neginf", -big)),
                                    Scalar::f32(kF32Max)};
       }},
      {"isnan", kGenFloats, f1([](KernelBuilder&, Value x) { return x != x; }),
       f1([](KernelBuilder&, Value x) { return x != x; })},
      {"isinf", kGenFloats,
       [](KernelBuilder& k, const Vals& x, const Vals& s, int) { return k.abs(x[0]) > s[0]; },
       f1([](KernelBuilder&, Value x) { return x != x; }),
       [](const KernelArgs&) { return std::vector<Scalar>{Scalar::f32(kF32Max)}; }},
      {"isfinite", kGenFloats,
       [](KernelBuilder& k, const Vals& x, const Vals& s, int) { return k.abs(x[0]) <= s[0]; },
       f1([](KernelBuilder&, Value x) { return x == x; }),
       [](const KernelArgs&) { return std::vector<Scalar>{Scalar::f32(kF32Max)}; }},
      {"logical_not", kAllGen, f1([](KernelBuilder&, Value x) { return x == 0.0f; }),
       f1([](KernelBuilder&, Value x) { return x == 0; })},
      {"bitwise_not", kIntsBool, nullptr, f1([](KernelBuilder&, Value x) { return ~x; })},
  };
  return table;
}

// Float scalars only make sense for float bodies; integer bodies of ops with float attributes
// (isinf/isfinite) take none.
void run_unary(const UnaryEntry& e, KernelArgs& args) {
  const Tensor& x = args.inputs[0];
  const Tensor& out = args.outputs[0];
  bool flt = is_floating(x.dtype());
  std::vector<Scalar> scalars = e.scalars ? e.scalars(args) : std::vector<Scalar>{};
  if (!flt && (std::string_view(e.op) == "isinf" || std::string_view(e.op) == "isfinite"))
    scalars.clear();
  int variant = e.variant ? e.variant(args.attrs) : 0;
  run_map(e.op, std::string(e.op) + (flt ? "_f" : "_i"), flt ? e.fbody : e.ibody, variant, {x}, out,
          scalars);
}

}  // namespace

void register_unary_table(Registry& r) {
  for (const UnaryEntry& e : unary_table()) {
    const UnaryEntry* p = &e;
    std::vector<DType> dtypes;
    for (DType d : e.dtypes)
      if (is_floating(d) ? static_cast<bool>(e.fbody) : static_cast<bool>(e.ibody))
        dtypes.push_back(d);
    add_generated(
        r, e.op, dtypes, [p](KernelArgs& args) { run_unary(*p, args); },
        e.refuse ? std::function<std::string(const KernelArgs&)>(e.refuse) : nullptr);
  }
}

}  // namespace flagstone::ops::gen
