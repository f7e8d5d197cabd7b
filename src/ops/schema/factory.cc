// Factories: arange, linspace, full, zeros, ones, eye, and the seeded rand, randn, randint that
// every device computes from the same Philox stream; schemas and references.
#include <cmath>

#include "flagstone/ops/random.h"
#include "internal.h"
#include "reference/host.h"
#include "shape_rules.h"

namespace flagstone::ops {
namespace {

OpSchema factory_schema(const char* name, const char* attrs, const char* doc,
                        std::vector<DType> dtypes) {
  OpSchema s;
  s.name = name;
  s.family = "factory";
  s.outputs = {"out"};
  s.attrs = {std::string(attrs) + " device=cpu"};
  s.dtypes = std::move(dtypes);
  s.doc = doc;
  s.is_factory = true;
  s.dispatch_input = -1;
  return s;
}

Shape attr_shape(const Attrs& attrs) {
  auto shape = attrs.get_ints("shape", {});
  for (int64_t d : shape)
    FS_CHECK(d >= 0, kInvalidArgument, "shape ", shape_to_string(shape), " has a negative size");
  return shape;
}

bool is_int_valued(const Attrs& attrs, const char* name) {
  if (!attrs.has(name)) return true;
  return std::holds_alternative<int64_t>(attrs.items().at(name).value());
}

int64_t arange_length(const Attrs& attrs) {
  double start = attrs.get_double("start", 0), end = attrs.double_at("end"),
         step = attrs.get_double("step", 1);
  FS_CHECK(step != 0, kInvalidArgument, "arange step must be nonzero");
  FS_CHECK((end - start) / step >= 0 || start == end, kInvalidArgument, "arange from ", start,
           " to ", end, " with step ", step, " goes the wrong way");
  return static_cast<int64_t>(std::ceil((end - start) / step));
}

}  // namespace

void register_factory_ops(Registry& registry) {
  OpSchema ar = factory_schema("arange", "start=0 end step=1 dtype?",
                               "start, start+step, ... < end (i64 for integer arguments, else f32)",
                               numeric_types());
  ar.infer = [](const std::vector<Tensor>&, const Attrs& attrs) {
    bool ints = is_int_valued(attrs, "start") && is_int_valued(attrs, "end") &&
                is_int_valued(attrs, "step");
    return std::vector<OutputSpec>{
        {{arange_length(attrs)}, attr_dtype(attrs, ints ? DType::kI64 : DType::kF32)}};
  };
  ar.reference = [](KernelArgs& args) {
    const Tensor& out = args.outputs[0];
    if (!is_floating(out.dtype())) {
      int64_t start = args.attrs.get_int("start", 0), step = args.attrs.get_int("step", 1);
      if (is_int_valued(args.attrs, "start") && is_int_valued(args.attrs, "step")) {
        std::vector<int64_t> v(static_cast<size_t>(out.numel()));
        for (int64_t i = 0; i < out.numel(); ++i) v[i] = start + i * step;
        ref::store_i64(out, v);
        return;
      }
    }
    double start = args.attrs.get_double("start", 0), step = args.attrs.get_double("step", 1);
    std::vector<double> v(static_cast<size_t>(out.numel()));
    for (int64_t i = 0; i < out.numel(); ++i) v[i] = start + static_cast<double>(i) * step;
    ref::store(out, v);
  };
  registry.add_schema(std::move(ar));

  OpSchema ls =
      factory_schema("linspace", "start end steps dtype=f32",
                     "steps evenly spaced values from start to end inclusive", numeric_types());
  ls.infer = [](const std::vector<Tensor>&, const Attrs& attrs) {
    int64_t steps = attrs.int_at("steps");
    FS_CHECK(steps >= 0, kInvalidArgument, "linspace steps=", steps, " must be non-negative");
    attrs.double_at("start"), attrs.double_at("end");
    return std::vector<OutputSpec>{{{steps}, attr_dtype(attrs, DType::kF32)}};
  };
  ls.reference = [](KernelArgs& args) {
    int64_t n = args.attrs.int_at("steps");
    double start = args.attrs.double_at("start"), end = args.attrs.double_at("end");
    double step = n > 1 ? (end - start) / static_cast<double>(n - 1) : 0;
    std::vector<double> v(static_cast<size_t>(n));
    // torch fills the second half backwards from end so both endpoints are exact.
    for (int64_t i = 0; i < n; ++i)
      v[i] = i < n / 2 ? start + step * static_cast<double>(i)
                       : end - step * static_cast<double>(n - 1 - i);
    ref::store(args.outputs[0], v);
  };
  registry.add_schema(std::move(ls));

  struct Fill {
    const char* name;
    const char* attrs;
    double value;  // NaN: from the "value" attr
  };
  for (Fill f : {Fill{"full", "shape value dtype=f32", NAN}, Fill{"zeros", "shape dtype=f32", 0.0},
                 Fill{"ones", "shape dtype=f32", 1.0}}) {
    OpSchema s = factory_schema(f.name, f.attrs, "a tensor of one value", all_plain_types());
    bool from_attr = std::isnan(f.value);
    s.infer = [from_attr](const std::vector<Tensor>&, const Attrs& attrs) {
      if (from_attr) attrs.double_at("value");
      return std::vector<OutputSpec>{{attr_shape(attrs), attr_dtype(attrs, DType::kF32)}};
    };
    double value = f.value;
    s.reference = [from_attr, value](KernelArgs& args) {
      const Tensor& out = args.outputs[0];
      if (from_attr && std::holds_alternative<int64_t>(args.attrs.items().at("value").value()) &&
          !is_floating(out.dtype())) {
        ref::store_i64(out, std::vector<int64_t>(static_cast<size_t>(out.numel()),
                                                 args.attrs.get_int("value", 0)));
        return;
      }
      double v = from_attr ? args.attrs.double_at("value") : value;
      ref::store(out, std::vector<double>(static_cast<size_t>(out.numel()), v));
    };
    registry.add_schema(std::move(s));
  }

  OpSchema eye =
      factory_schema("eye", "n m=n dtype=f32", "identity matrix [n, m]", all_plain_types());
  eye.infer = [](const std::vector<Tensor>&, const Attrs& attrs) {
    int64_t n = attrs.int_at("n"), m = attrs.get_int("m", n);
    FS_CHECK(n >= 0 && m >= 0, kInvalidArgument, "eye needs non-negative n and m, got ", n, " and ",
             m);
    return std::vector<OutputSpec>{{{n, m}, attr_dtype(attrs, DType::kF32)}};
  };
  eye.reference = [](KernelArgs& args) {
    const Tensor& out = args.outputs[0];
    int64_t m = out.size(1);
    std::vector<double> v(static_cast<size_t>(out.numel()), 0.0);
    for (int64_t i = 0; i < out.size(0) && i < m; ++i) v[i * m + i] = 1;
    ref::store(out, v);
  };
  registry.add_schema(std::move(eye));

  for (const char* name : {"rand", "randn"}) {
    bool normal = std::string_view(name) == "randn";
    OpSchema s = factory_schema(name, "shape seed=0 offset=0 dtype=f32",
                                normal ? "standard normal values: Box-Muller over the Philox stream"
                                       : "uniform [0, 1) values: 24 Philox bits per element",
                                kFloatTypes);
    s.infer = [](const std::vector<Tensor>&, const Attrs& attrs) {
      DType d = attr_dtype(attrs, DType::kF32);
      FS_CHECK(is_floating(d), kInvalidArgument, "random floats need a floating dtype, got ",
               dtype_name(d));
      return std::vector<OutputSpec>{{attr_shape(attrs), d}};
    };
    s.reference = [normal](KernelArgs& args) {
      auto seed = static_cast<uint64_t>(args.attrs.get_int("seed", 0));
      auto offset = static_cast<uint64_t>(args.attrs.get_int("offset", 0));
      std::vector<double> v(static_cast<size_t>(args.outputs[0].numel()));
      for (size_t i = 0; i < v.size(); ++i)
        v[i] = normal ? random_normal(seed, offset, i) : random_uniform(seed, offset, i);
      ref::store(args.outputs[0], v);
    };
    registry.add_schema(std::move(s));
  }

  OpSchema ri = factory_schema("randint", "low=0 high shape seed=0 offset=0 dtype=i64",
                               "uniform integers in [low, high)", numeric_types());
  ri.infer = [](const std::vector<Tensor>&, const Attrs& attrs) {
    int64_t low = attrs.get_int("low", 0), high = attrs.int_at("high");
    FS_CHECK(low < high && static_cast<uint64_t>(high - low) <= (uint64_t{1} << 32),
             kInvalidArgument, "randint needs low < high and a range of at most 2^32, got [", low,
             ", ", high, ")");
    return std::vector<OutputSpec>{{attr_shape(attrs), attr_dtype(attrs, DType::kI64)}};
  };
  ri.reference = [](KernelArgs& args) {
    auto seed = static_cast<uint64_t>(args.attrs.get_int("seed", 0));
    auto offset = static_cast<uint64_t>(args.attrs.get_int("offset", 0));
    int64_t low = args.attrs.get_int("low", 0), high = args.attrs.int_at("high");
    std::vector<int64_t> v(static_cast<size_t>(args.outputs[0].numel()));
    for (size_t i = 0; i < v.size(); ++i) v[i] = random_int(seed, offset, i, low, high);
    ref::store_i64(args.outputs[0], v);
  };
  registry.add_schema(std::move(ri));
}

}  // namespace flagstone::ops
