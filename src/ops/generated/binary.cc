// Generated binary ops from one table (float, integer and bool bodies per op), the ternary
// where/lerp/addcmul/addcdiv, and casts. Inputs are promoted to torch's result_type first (a
// dispatched cast), so each body is compiled for one compute dtype.
#include "flagstone/ops/dtype_rules.h"
#include "generated/map.h"
#include "generated/math.h"

namespace flagstone::ops::gen {
namespace {

using Vals = std::vector<Value>;

bool served(DType d) {
  return d == DType::kF32 || d == DType::kF16 || d == DType::kBF16 || d == DType::kI32 ||
         d == DType::kI64 || d == DType::kBool;
}

std::vector<DType> served_dtypes() {
  return {DType::kF32, DType::kF16, DType::kBF16, DType::kI64, DType::kI32, DType::kBool};
}

MapBody f2(Value (*f)(KernelBuilder&, Value, Value)) {
  return [f](KernelBuilder& k, const Vals& x, const Vals&, int) { return f(k, x[0], x[1]); };
}

// maximum/minimum propagate NaN (the language's min/max return the first operand instead).
Value nan_max(KernelBuilder& k, Value a, Value b) {
  return k.where((a != a) | (b != b), a + b, k.maximum(a, b));
}
Value nan_min(KernelBuilder& k, Value a, Value b) {
  return k.where((a != a) | (b != b), a + b, k.minimum(a, b));
}

Value bits_of(KernelBuilder& k, const Value& like) {
  return k.literal_like(static_cast<int64_t>(dtype_size(like.dtype()) * 8), like);
}

struct BinaryEntry {
  const char* op;
  MapBody fbody;  // float compute dtypes (f32 math)
  MapBody ibody;  // i32/i64
  MapBody bbody;  // bool
  // Scalars from attributes, given the compute dtype.
  std::vector<Scalar> (*scalars)(const KernelArgs& args, DType compute) = nullptr;
  int (*variant)(const Attrs& attrs) = nullptr;
};

std::vector<Scalar> alpha(const KernelArgs& args, DType compute) {
  if (is_floating(compute)) return {Scalar::f32(args.attrs.get_double("alpha", 1.0))};
  return {Scalar::i64(args.attrs.get_int("alpha", 1))};
}

const std::vector<BinaryEntry>& binary_table() {
  auto cmp = [](Value (*f)(Value, Value)) {
    return [f](KernelBuilder&, const Vals& x, const Vals&, int) { return f(x[0], x[1]); };
  };
  static const std::vector<BinaryEntry> table = {
      {"add", [](KernelBuilder&, const Vals& x, const Vals& s, int) { return x[0] + s[0] * x[1]; },
       [](KernelBuilder&, const Vals& x, const Vals& s, int) {
         return x[0] + s[0].to(x[0].dtype()) * x[1];
       },
       cmp([](Value a, Value b) { return a | b; }), alpha},
      {"sub", [](KernelBuilder&, const Vals& x, const Vals& s, int) { return x[0] - s[0] * x[1]; },
       [](KernelBuilder&, const Vals& x, const Vals& s, int) {
         return x[0] - s[0].to(x[0].dtype()) * x[1];
       },
       nullptr, alpha},
      {"mul", cmp([](Value a, Value b) { return a * b; }),
       cmp([](Value a, Value b) { return a * b; }), cmp([](Value a, Value b) { return a & b; })},
      {"div",
       [](KernelBuilder& k, const Vals& x, const Vals&, int mode) {
         if (mode == 1) return trunc(k, x[0] / x[1]);
         if (mode == 2) return floor_divide(k, x[0], x[1]);
         return x[0] / x[1];
       },
       nullptr, nullptr, nullptr,
       [](const Attrs& a) {
         std::string mode = a.get_string("rounding_mode", "none");
         return mode == "trunc" ? 1 : (mode == "floor" ? 2 : 0);
       }},
      {"floor_divide", f2(floor_divide), nullptr, nullptr},
      {"pow", f2([](KernelBuilder& k, Value a, Value b) { return k.pow(a, b); }), nullptr, nullptr},
      {"maximum", f2(nan_max),
       f2([](KernelBuilder& k, Value a, Value b) { return k.maximum(a, b); }),
       cmp([](Value a, Value b) { return a | b; })},
      {"minimum", f2(nan_min),
       f2([](KernelBuilder& k, Value a, Value b) { return k.minimum(a, b); }),
       cmp([](Value a, Value b) { return a & b; })},
      {"fmod", cmp([](Value a, Value b) { return a % b; }), nullptr, nullptr},
      {"remainder", f2([](KernelBuilder& k, Value a, Value b) {
         Value m = a % b;
         return k.where((m != 0.0f) & ((b < 0.0f) != (m < 0.0f)), m + b, m);
       }),
       nullptr, nullptr},
      {"atan2", f2(atan2), nullptr, nullptr},
      {"eq", cmp([](Value a, Value b) { return a == b; }),
       cmp([](Value a, Value b) { return a == b; }), cmp([](Value a, Value b) { return a == b; })},
      {"ne", cmp([](Value a, Value b) { return a != b; }),
       cmp([](Value a, Value b) { return a != b; }), cmp([](Value a, Value b) { return a != b; })},
      {"lt", cmp([](Value a, Value b) { return a < b; }),
       cmp([](Value a, Value b) { return a < b; }), cmp([](Value a, Value b) { return a < b; })},
      {"le", cmp([](Value a, Value b) { return a <= b; }),
       cmp([](Value a, Value b) { return a <= b; }), cmp([](Value a, Value b) { return a <= b; })},
      {"gt", cmp([](Value a, Value b) { return a > b; }),
       cmp([](Value a, Value b) { return a > b; }), cmp([](Value a, Value b) { return a > b; })},
      {"ge", cmp([](Value a, Value b) { return a >= b; }),
       cmp([](Value a, Value b) { return a >= b; }), cmp([](Value a, Value b) { return a >= b; })},
      {"logical_and", cmp([](Value a, Value b) { return (a != 0.0f) & (b != 0.0f); }),
       cmp([](Value a, Value b) { return (a != 0) & (b != 0); }),
       cmp([](Value a, Value b) { return a & b; })},
      {"logical_or", cmp([](Value a, Value b) { return (a != 0.0f) | (b != 0.0f); }),
       cmp([](Value a, Value b) { return (a != 0) | (b != 0); }),
       cmp([](Value a, Value b) { return a | b; })},
      {"logical_xor", cmp([](Value a, Value b) { return (a != 0.0f) != (b != 0.0f); }),
       cmp([](Value a, Value b) { return (a != 0) != (b != 0); }),
       cmp([](Value a, Value b) { return a != b; })},
      {"bitwise_and", nullptr, cmp([](Value a, Value b) { return a & b; }),
       cmp([](Value a, Value b) { return a & b; })},
      {"bitwise_or", nullptr, cmp([](Value a, Value b) { return a | b; }),
       cmp([](Value a, Value b) { return a | b; })},
      {"bitwise_xor", nullptr, cmp([](Value a, Value b) { return a ^ b; }),
       cmp([](Value a, Value b) { return a ^ b; })},
      {"bitwise_left_shift", nullptr, f2([](KernelBuilder& k, Value a, Value b) {
         Value out_of_range = (b < 0) | (b >= bits_of(k, b));
         return k.where(out_of_range, k.literal_like(0, a), a << k.where(out_of_range, b * 0, b));
       }),
       nullptr},
      {"bitwise_right_shift", nullptr, f2([](KernelBuilder& k, Value a, Value b) {
         Value last = bits_of(k, b) - 1;
         return a >> k.where((b < 0) | (b >= bits_of(k, b)), last, b);
       }),
       nullptr},
  };
  return table;
}

// The dtype the op computes in: torch's result_type, or the float output of a true division
// (or atan2) of integers.
DType compute_of(const KernelArgs& args) {
  DType c = result_type({args.inputs[0], args.inputs[1]});
  DType out = args.outputs[0].dtype();
  if (is_floating(out) && !is_floating(c)) c = out;
  return c;
}

const MapBody& body_for(const BinaryEntry& e, DType c) {
  if (is_floating(c)) return e.fbody;
  return c == DType::kBool ? e.bbody : e.ibody;
}

std::string refuse_binary(const BinaryEntry& e, const KernelArgs& args) {
  DType c = compute_of(args);
  if (!served(c) || !served(args.outputs[0].dtype()))
    return "generated kernels compute in f32/f16/bf16/i32/i64/bool, not " +
           std::string(dtype_name(c));
  if (!body_for(e, c))
    return "no generated " + std::string(dtype_name(c)) + " body (the reference defines it)";
  return "";
}

void run_binary(const BinaryEntry& e, KernelArgs& args) {
  DType c = compute_of(args);
  Tensor a = as_dtype(args.inputs[0], c), b = as_dtype(args.inputs[1], c);
  std::vector<Scalar> scalars = e.scalars ? e.scalars(args, c) : std::vector<Scalar>{};
  int variant = e.variant ? e.variant(args.attrs) : 0;
  std::string kind = is_floating(c) ? "_f" : (c == DType::kBool ? "_b" : "_i");
  run_map(e.op, e.op + kind, body_for(e, c), variant, {a, b}, args.outputs[0], scalars);
}

// where, lerp, addcmul, addcdiv: inputs brought to the output dtype, condition kept bool.
void run_ternary(const std::string& op, const MapBody& body, KernelArgs& args) {
  DType out = args.outputs[0].dtype();
  std::vector<Tensor> in;
  for (size_t i = 0; i < 3; ++i)
    in.push_back(op == "where" && i == 0 ? args.inputs[0] : as_dtype(args.inputs[i], out));
  std::vector<Scalar> scalars;
  if (op == "addcmul" || op == "addcdiv")
    scalars.push_back(is_floating(out) ? Scalar::f32(args.attrs.get_double("value", 1.0))
                                       : Scalar::i64(args.attrs.get_int("value", 1)));
  run_map(op, op + (is_floating(out) ? "_f" : "_n"), body, 0, in, args.outputs[0], scalars);
}

}  // namespace

void register_binary_table(Registry& r) {
  for (const BinaryEntry& e : binary_table()) {
    const BinaryEntry* p = &e;
    add_generated(
        r, e.op, served_dtypes(), [p](KernelArgs& args) { run_binary(*p, args); },
        [p](const KernelArgs& args) { return refuse_binary(*p, args); });
  }

  auto refuse_out = [](const KernelArgs& args) {
    return served(args.outputs[0].dtype()) ? std::string() : std::string("output dtype not served");
  };
  add_generated(
      r, "where", served_dtypes(),
      [](KernelArgs& args) {
        run_ternary(
            "where",
            [](KernelBuilder& k, const Vals& x, const Vals&, int) {
              return k.where(x[0], x[1], x[2]);
            },
            args);
      },
      refuse_out);
  add_generated(r, "lerp", kGenFloats, [](KernelArgs& args) {
    run_ternary(
        "lerp",
        [](KernelBuilder& k, const Vals& x, const Vals&, int) {
          Value d = x[1] - x[0];
          return k.where(x[2] < 0.5f, x[0] + x[2] * d, x[1] - d * (1.0f - x[2]));
        },
        args);
  });
  add_generated(r, "addcmul", kGenFloats, [](KernelArgs& args) {
    run_ternary(
        "addcmul",
        [](KernelBuilder&, const Vals& x, const Vals& s, int) { return x[0] + s[0] * x[1] * x[2]; },
        args);
  });
  add_generated(r, "addcdiv", kGenFloats, [](KernelArgs& args) {
    run_ternary(
        "addcdiv",
        [](KernelBuilder&, const Vals& x, const Vals& s, int) { return x[0] + s[0] * x[1] / x[2]; },
        args);
  });

  // Casts: floats to integers truncate through i64 first, so narrow targets wrap as the
  // reference does instead of hitting the undefined out-of-range float conversion.
  add_generated(
      r, "cast", served_dtypes(),
      [](KernelArgs& args) {
        const Tensor& x = args.inputs[0];
        const Tensor& out = args.outputs[0];
        bool via_i64 =
            is_floating(x.dtype()) && !is_floating(out.dtype()) && out.dtype() != DType::kBool;
        run_map(
            "cast", via_i64 ? "cast_via_i64" : "cast",
            [](KernelBuilder&, const Vals& v, const Vals&, int via) {
              return via ? v[0].to(DType::kI64) : v[0];
            },
            via_i64 ? 1 : 0, {x}, out);
      },
      [](const KernelArgs& args) {
        DType to = args.outputs[0].dtype();
        return served(to) || to == DType::kF64 || to == DType::kI16 || to == DType::kI8 ||
                       to == DType::kU8
                   ? std::string()
                   : std::string("target dtype not served");
      });
}

}  // namespace flagstone::ops::gen
