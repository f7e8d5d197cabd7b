// Parity cases for the ops the generated provider added implementations for (math with special
// values, integer and bool ops, ternaries, the remaining reductions). Only ops without a case
// generator get one here, so the shared table in parity_cases.cc keeps precedence.
#include <cmath>
#include <limits>

#include "ops/parity_cases.h"

namespace flagstone::ops::testing {
namespace {

using Cases = std::vector<ParityCase>;

bool is_int(DType d) {
  return !is_floating(d) && d != DType::kBool;
}

Tensor rnd(Rng& rng, const Shape& s, DType d, const Device& dev, double lo, double hi,
           bool strided = false) {
  if (d == DType::kU8) lo = std::max(lo, 0.0), hi = std::max(hi, 1.0);
  return random_tensor(rng, s, d, dev, lo, hi, strided);
}

// Values drawn from a few integers (zeros included), for logical ops and all/any.
Tensor small_ints(Rng& rng, const Shape& s, DType d, const Device& dev) {
  std::vector<double> v(static_cast<size_t>(shape_numel(s)));
  for (auto& e : v) e = static_cast<double>(rng.integer(d == DType::kU8 ? 0 : -1, 1));
  return make_tensor(v, s, d, dev);
}

// Random floats with NaN, +inf and -inf mixed in (integers stay plain).
Tensor with_specials(Rng& rng, const Shape& s, DType d, const Device& dev) {
  std::vector<double> v(static_cast<size_t>(shape_numel(s)));
  const double inf = std::numeric_limits<double>::infinity();
  for (auto& e : v) {
    e = is_floating(d) ? rng.uniform(-3, 3) : static_cast<double>(rng.integer(0, 9));
    if (is_floating(d) && rng.integer(0, 3) == 0) {
      int64_t which = rng.integer(0, 2);
      e = which == 0 ? std::nan("") : (which == 1 ? inf : -inf);
    }
  }
  return make_tensor(v, s, d, dev);
}

CaseGenerator unary(double lo, double hi, std::vector<Attrs> variants = {Attrs{}}) {
  return [=](Rng& rng, DType d, const Device& dev) {
    Cases c;
    for (const Attrs& a : variants) {
      c.push_back({{rnd(rng, {41}, d, dev, lo, hi)}, a, 1, "1-d odd"});
      c.push_back({{rnd(rng, {3, 4, 7}, d, dev, lo, hi, true)}, a, 1, "strided"});
    }
    c.push_back({{rnd(rng, {}, d, dev, lo, hi)}, variants.front(), 1, "0-d"});
    return c;
  };
}

CaseGenerator specials(Attrs attrs = {}) {
  return [=](Rng& rng, DType d, const Device& dev) {
    return Cases{{{with_specials(rng, {53}, d, dev)}, attrs, 1, "with NaN and inf"},
                 {{with_specials(rng, {4, 6}, d, dev).t()}, attrs, 1, "transposed"}};
  };
}

using Maker = std::function<Tensor(Rng&, const Shape&, DType, const Device&, bool strided)>;

Maker uniform(double lo, double hi) {
  return [=](Rng& rng, const Shape& s, DType d, const Device& dev, bool strided) {
    return rnd(rng, s, d, dev, lo, hi, strided);
  };
}

// Magnitudes in [lo, hi] with a random sign: divisors kept away from zero.
Maker signed_away(double lo, double hi) {
  return [=](Rng& rng, const Shape& s, DType d, const Device& dev, bool strided) {
    Tensor t = rnd(rng, s, DType::kF64, Device(), lo, hi, strided).contiguous();
    auto v = t.to_double_vector();
    for (auto& e : v) e = (rng.integer(0, 1) == 1 || d == DType::kU8) ? e : -e;  // u8 stays >= 0
    if (is_int(d))
      for (auto& e : v) e = std::round(e) == 0 ? 1 : std::round(e);
    Tensor out = make_tensor(v, s, d, dev);
    return strided && s.size() == 2 ? out.t().contiguous().t() : out;
  };
}

Maker logical() {
  return [](Rng& rng, const Shape& s, DType d, const Device& dev, bool) {
    return small_ints(rng, s, d, dev);
  };
}

CaseGenerator binary(Maker a, Maker b, Attrs attrs = {}) {
  return [=](Rng& rng, DType d, const Device& dev) {
    return Cases{
        {{a(rng, {6, 11}, d, dev, false), b(rng, {6, 11}, d, dev, false)}, attrs, 1, "same shape"},
        {{a(rng, {4, 1, 7}, d, dev, false), b(rng, {3, 1}, d, dev, false)}, attrs, 1, "broadcast"},
        {{a(rng, {5, 9}, d, dev, true), b(rng, {5, 9}, d, dev, true)}, attrs, 1, "strided"}};
  };
}

Attrs dims(std::vector<int64_t> d, bool keep = false) {
  return Attrs{{"dims", d}, {"keepdim", keep}};
}

CaseGenerator reduce(std::vector<Attrs> variants, Maker make) {
  return [=](Rng& rng, DType d, const Device& dev) {
    Cases c;
    for (const Attrs& a : variants) {
      auto ds = a.get_ints("dims", {});
      int64_t k = 1;
      for (int64_t dd : ds)
        k *= std::vector<int64_t>{5, 6, 7}[static_cast<size_t>(dd < 0 ? dd + 3 : dd)];
      if (ds.empty()) k = 5 * 6 * 7;
      c.push_back({{make(rng, {5, 6, 7}, d, dev, false)}, a, k, "contiguous"});
      c.push_back({{make(rng, {5, 6, 7}, d, dev, true)}, a, k, "strided"});
    }
    return c;
  };
}

}  // namespace

void add_generated_parity_cases(std::map<std::string, CaseGenerator>& g) {
  auto put = [&](const std::string& op, CaseGenerator gen) { g.emplace(op, std::move(gen)); };
  for (const char* op : {"exp2", "erf", "mish", "hardswish", "sign", "expm1"})
    put(op, unary(-4, 4));
  put("log2", unary(0.01, 5));
  put("log1p", unary(-0.9, 5));
  put("tan", unary(-1.4, 1.4));
  put("leaky_relu", unary(-3, 3, {Attrs{}, Attrs{{"negative_slope", 0.2}}}));
  put("elu", unary(-3, 3, {Attrs{{"alpha", 1.5}}}));
  put("softplus", unary(-4, 4, {Attrs{}, Attrs{{"beta", 2.0}, {"threshold", 3.0}}}));
  put("round", unary(-10, 10));
  put("clamp", unary(-3, 3, {Attrs{{"min", -1.0}, {"max", 1.5}}, Attrs{{"min", 0.5}}}));
  put("pow_scalar", unary(0.1, 3, {Attrs{{"exponent", 2.5}}, Attrs{{"exponent", 3}}}));
  put("nan_to_num", specials({{"nan", 1.5}, {"posinf", 100.0}}));
  for (const char* op : {"isnan", "isinf", "isfinite"}) put(op, specials());
  put("logical_not", [](Rng& rng, DType d, const Device& dev) {
    return Cases{{{small_ints(rng, {37}, d, dev)}, {}, 1, "with zeros"},
                 {{small_ints(rng, {5, 4}, d, dev).t()}, {}, 1, "transposed"}};
  });
  put("bitwise_not", unary(-60, 60));

  put("floor_divide", binary(uniform(-5, 5), signed_away(0.5, 3)));
  put("fmod", binary(uniform(-5, 5), signed_away(0.5, 3)));
  put("remainder", binary(uniform(-5, 5), signed_away(0.5, 3)));
  // Integers to negative powers are errors in torch (and the reference): exponents >= 0 there.
  put("pow", binary(uniform(0.1, 3),
                    [](Rng& rng, const Shape& s, DType d, const Device& dev, bool strided) {
                      return rnd(rng, s, d, dev, is_int(d) ? 0 : -2, is_int(d) ? 3 : 2, strided);
                    }));
  put("atan2", binary(uniform(-3, 3), uniform(-3, 3)));
  for (const char* op :
       {"logical_and", "logical_or", "logical_xor", "bitwise_and", "bitwise_or", "bitwise_xor"})
    put(op, binary(logical(), logical()));
  put("bitwise_left_shift", binary(uniform(-60, 60), uniform(-3, 40)));
  put("bitwise_right_shift", binary(uniform(-60, 60), uniform(-3, 70)));
  put("where", [](Rng& rng, DType d, const Device& dev) {
    return Cases{{{small_ints(rng, {6, 11}, DType::kBool, dev), rnd(rng, {6, 11}, d, dev, -3, 3),
                   rnd(rng, {6, 11}, d, dev, -3, 3)},
                  {},
                  1,
                  "same shape"},
                 {{small_ints(rng, {4, 1, 7}, DType::kBool, dev), rnd(rng, {3, 1}, d, dev, -3, 3),
                   rnd(rng, {}, d, dev, -3, 3)},
                  {},
                  1,
                  "broadcast, 0-d other"}};
  });
  auto ternary = [](Maker third, Attrs attrs) -> CaseGenerator {
    return [=](Rng& rng, DType d, const Device& dev) {
      return Cases{{{rnd(rng, {6, 11}, d, dev, -3, 3), rnd(rng, {6, 11}, d, dev, -3, 3),
                     third(rng, {6, 11}, d, dev, false)},
                    attrs,
                    1,
                    "same shape"},
                   {{rnd(rng, {4, 1, 7}, d, dev, -3, 3, true), rnd(rng, {3, 1}, d, dev, -3, 3),
                     third(rng, {7}, d, dev, false)},
                    attrs,
                    1,
                    "broadcast, strided"}};
    };
  };
  put("lerp", ternary(uniform(0, 1), {}));
  put("addcmul", ternary(uniform(-3, 3), {{"value", 0.5}}));
  put("addcdiv", ternary(signed_away(0.5, 3), {{"value", 2.0}}));

  put("prod", reduce({dims({}), dims({2}), dims({0, 2}, true)}, uniform(0.5, 1.5)));
  put("var",
      reduce({dims({1}), Attrs{{"dims", std::vector<int64_t>{0, 2}}, {"correction", 0}}, dims({})},
             uniform(-3, 3)));
  g.emplace("std", g.at("var"));
  put("norm", reduce({dims({2}), Attrs{{"dims", std::vector<int64_t>{0}}, {"p", 1}},
                      Attrs{{"p", "inf"}, {"dims", std::vector<int64_t>{1, 2}}},
                      Attrs{{"p", "-inf"}, {"dims", std::vector<int64_t>{2}}},
                      Attrs{{"p", 3.0}, {"dims", std::vector<int64_t>{-1}}},
                      Attrs{{"p", 0}, {"dims", std::vector<int64_t>{1}}}},
                     uniform(-3, 3)));
  put("logsumexp", reduce({dims({2}), dims({0, 1}, true), dims({})}, uniform(-5, 5)));
  put("cross_entropy", [](Rng& rng, DType d, const Device& dev) {
    std::vector<double> t(7);
    for (auto& e : t) e = static_cast<double>(rng.integer(0, 12));
    t[3] = -100;  // ignored sample
    Tensor target = make_tensor(t, {7}, DType::kI64, dev);
    Cases c;
    for (const char* red : {"mean", "sum", "none"})
      c.push_back({{rnd(rng, {7, 13}, d, dev, -4, 4), target},
                   {{"reduction", red}, {"label_smoothing", 0.1}},
                   7 * 13,
                   std::string("reduction ") + red});
    c.push_back({{rnd(rng, {13}, d, dev, -4, 4, true), make_tensor({5}, {}, DType::kI32, dev)},
                 {},
                 13,
                 "one strided sample"});
    return c;
  });
  for (const char* op : {"all", "any", "count_nonzero"})
    put(op, reduce({dims({2}), dims({0, 1}, true), dims({})}, logical()));
}

}  // namespace flagstone::ops::testing
