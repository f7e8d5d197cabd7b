// Generated reductions over any dims: sum mean prod amax amin var std norm logsumexp all any
// count_nonzero, and argmax/argmin/max/min along a dim. The input is seen as [kept..., reduced]
// (kept dims collapsed to at most 3, reduced dims to at most 2); each program reduces BM rows
// in [BM, BN] tiles, accumulating in f32 (floats) or i64 (integers).
#include <cmath>
#include <limits>

#include "flagstone/ops/dtype_rules.h"
#include "generated/gen_common.h"
#include "shape_rules.h"

namespace flagstone::ops::gen {
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
  kCount,
  kArgMax,
  kArgMin
};

// norm's p as a compile-time variant: the common ones get their own loops.
enum NormP { kP2 = 0, kP1 = 1, kPInf = 2, kPNegInf = 3, kP0 = 4, kPOther = 5 };

constexpr int kKeptRank = 3;
constexpr double kInf = std::numeric_limits<double>::infinity();

// Rows of short reductions share a program; long rows get a whole program and wide tiles.
Config config_for(int64_t n) {
  if (n >= 512) return Config{{"BM", 1}, {"BN", 512}, {"num_warps", 4}};
  return Config{{"BM", 16}, {"BN", 32}, {"num_warps", 4}};
}

struct Plan {
  Tensor x;    // rank kKeptRank + rr view: [k0, k1, k2, r0 (, r1)]
  Tensor out;  // [k0, k1, k2] views of each output
  Tensor out2;
  int rr = 1;  // reduced rank
  int64_t rows = 0, n = 0;
};

// Splits x's dims into kept and reduced ones and collapses each group for the kernel.
Plan make_plan(std::string_view op, const Tensor& x, const std::vector<int>& reduced,
               const std::vector<Tensor>& outs, bool keepdim) {
  std::vector<int> kept;
  for (int d = 0; d < x.dim(); ++d)
    if (std::find(reduced.begin(), reduced.end(), d) == reduced.end()) kept.push_back(d);
  Shape kshape;
  std::vector<Shape> kstrides(1 + outs.size());
  for (size_t i = 0; i < kept.size(); ++i) {
    int d = kept[i];
    kshape.push_back(x.size(d));
    kstrides[0].push_back(x.stride(d));
    for (size_t o = 0; o < outs.size(); ++o)
      kstrides[o + 1].push_back(outs[o].stride(keepdim ? d : static_cast<int>(i)));
  }
  Collapsed kc = collapse(kshape, kstrides);
  Shape rshape, rstride;
  for (int d : reduced) rshape.push_back(x.size(d)), rstride.push_back(x.stride(d));
  Collapsed rc = collapse(rshape, {rstride});
  FS_CHECK(kc.sizes.size() <= static_cast<size_t>(kKeptRank) && rc.sizes.size() <= 2, kUnsupported,
           "op '", op, "': the generated reduction takes up to 3 kept and 2 reduced ",
           "non-mergeable dims");
  pad_rank(kc, kKeptRank);
  Plan p;
  p.rr = static_cast<int>(rc.sizes.size());
  Shape sizes = kc.sizes, strides = kc.strides[0];
  sizes.insert(sizes.end(), rc.sizes.begin(), rc.sizes.end());
  strides.insert(strides.end(), rc.strides[0].begin(), rc.strides[0].end());
  p.x = restride(x, sizes, strides);
  p.out = restride(outs[0], kc.sizes, kc.strides[1]);
  if (outs.size() > 1) p.out2 = restride(outs[1], kc.sizes, kc.strides[2]);
  p.rows = shape_numel(kc.sizes);
  p.n = shape_numel(rc.sizes);
  return p;
}

// Builds the kernel: x [k0,k1,k2,r...], out [k0,k1,k2] (+ i64 indices for max/min). Scalars:
// `lo`/`hi` (the identities of max/min: -inf/inf, or the integer limits), `denom` (var/std),
// `p` (norm).
void build_reduce(KernelBuilder& k, Kind kind, int variant, DType in, DType out_dtype, int rr,
                  bool with_values) {
  int64_t bm = k.meta("BM"), bn = k.meta("BN");
  bool arg = kind == Kind::kArgMax || kind == Kind::kArgMin;
  TensorArg x = k.tensor_arg("x", in, kKeptRank + rr);
  TensorArg out = k.tensor_arg("out", out_dtype, kKeptRank);
  TensorArg idx_out;
  if (arg && with_values) idx_out = k.tensor_arg("indices", DType::kI64, kKeptRank);
  DType acc = is_floating(in) || is_floating(out_dtype) ? DType::kF32 : DType::kI64;
  bool count_like = kind == Kind::kAll || kind == Kind::kAny || kind == Kind::kCount;
  if (count_like) acc = DType::kI64;
  Value lo = k.scalar_arg("lo", acc);
  Value hi = k.scalar_arg("hi", acc);
  Value denom = k.scalar_arg("denom", DType::kF32);
  Value p = k.scalar_arg("p", DType::kF32);

  Value rows = k.program_id(0) * bm + k.arange(0, bm);
  Value rmask = rows < x.size(0) * x.size(1) * x.size(2);
  Value k2 = rows % x.size(2), k1 = (rows / x.size(2)) % x.size(1),
        k0 = rows / (x.size(2) * x.size(1));
  Value base = k0 * x.stride(0) + k1 * x.stride(1) + k2 * x.stride(2);
  auto out_offset = [&](const TensorArg& t) {
    return k0 * t.stride(0) + k1 * t.stride(1) + k2 * t.stride(2);
  };
  Value n = rr == 1 ? x.size(3) : x.size(3) * x.size(4);
  auto col_offset = [&](Value c) {
    if (rr == 1) return c * x.stride(3);
    return (c / x.size(4)) * x.stride(3) + (c % x.size(4)) * x.stride(4);
  };
  using Step = std::function<std::vector<Value>(std::vector<Value>, Value, Value, Value)>;
  // One pass over the rows in [BM, BN] tiles; `step(carried, v, valid, cols)` gives the next
  // carried values (v is already in the accumulation dtype).
  auto pass = [&](std::vector<Value> init, const Step& step) {
    return k.for_range(0, n, bn, std::move(init), [&](Value start, std::vector<Value> c) {
      Value cols = start + k.arange(0, bn);
      Value valid = rmask.col() & (cols.row() < n);
      Value raw = k.load(x.ptr + base.col() + col_offset(cols.row()), valid, 0);
      // Counting kinds test "nonzero" before any conversion (0.5 is nonzero).
      Value v = count_like ? raw.to(DType::kBool).to(acc) : raw.to(acc);
      return step(std::move(c), v, valid, cols);
    });
  };
  auto tile = [&](Value s) { return s.broadcast_to({bm, bn}); };
  // NaN tests only exist for floats (an integer self-comparison is a constant, and the OpenCL
  // compilers warn about it for every kernel).
  auto is_nan = [&](Value v) {
    return is_floating(v.dtype()) ? v != v : k.full(v.shape(), 0, DType::kBool);
  };
  auto tile_of = [&](double value) { return k.full({bm, bn}, value, acc); };
  Value zero = tile_of(0);
  Value nan = lo - lo;  // -inf - -inf: NaN without a NaN literal in the source
  // Running sum of f(v) over valid lanes.
  auto sum_of = [&](const std::function<Value(Value)>& f) {
    auto r = pass({zero}, [&](std::vector<Value> c, Value v, Value valid, Value) {
      return std::vector<Value>{c[0] + k.where(valid, f(v), zero)};
    });
    return k.sum(r[0], 1);
  };
  // max (or min) of f(v) over valid lanes, plus whether a NaN was seen.
  auto extreme_of = [&](bool is_max, const std::function<Value(Value)>& f, Value init,
                        Value* saw_nan) {
    Value none = k.full({bm, bn}, 0, DType::kI32);
    auto r = pass({tile(init), none}, [&](std::vector<Value> c, Value v, Value valid, Value) {
      Value t = f(v);
      Value e = is_max ? k.maximum(c[0], t) : k.minimum(c[0], t);
      Value isn = valid & is_nan(v);
      return std::vector<Value>{k.where(valid, e, c[0]), k.maximum(c[1], isn.to(DType::kI32))};
    });
    if (saw_nan) *saw_nan = k.max(r[1], 1) > 0;
    return is_max ? k.max(r[0], 1) : k.min(r[0], 1);
  };
  auto identity = [](Value v) { return v; };
  Value result;
  switch (kind) {
    case Kind::kSum:
      result = sum_of(identity);
      break;
    case Kind::kMean:
      result = sum_of(identity) / n.to(DType::kF32);
      break;
    case Kind::kCount:
      result = sum_of(identity);
      break;
    case Kind::kProd: {
      // Column by column: the language has no product reduction across a tile.
      Value one = k.full({bm}, 1, acc);
      auto r = k.for_range(0, n, 1, {one}, [&](Value j, std::vector<Value> c) {
        Value v = k.load(x.ptr + base + col_offset(j), rmask, 1).to(acc);
        return std::vector<Value>{c[0] * v};
      });
      result = r[0];
      break;
    }
    case Kind::kAmax:
    case Kind::kAmin: {
      Value saw_nan;
      bool is_max = kind == Kind::kAmax;
      result = extreme_of(is_max, identity, is_max ? lo : hi, is_floating(in) ? &saw_nan : nullptr);
      if (is_floating(in)) result = k.where(saw_nan, nan, result);
      break;
    }
    case Kind::kVar:
    case Kind::kStd: {
      Value mean = sum_of(identity) / n.to(DType::kF32);
      auto r = pass({zero}, [&](std::vector<Value> c, Value v, Value valid, Value) {
        Value d = v - mean.col();
        return std::vector<Value>{c[0] + k.where(valid, d * d, zero)};
      });
      result = k.sum(r[0], 1) / denom;
      if (kind == Kind::kStd) result = k.sqrt(result);
      break;
    }
    case Kind::kNorm: {
      Value saw_nan;
      if (variant == kP2) {
        result = k.sqrt(sum_of([](Value v) { return v * v; }));
      } else if (variant == kP1) {
        result = sum_of([&](Value v) { return k.abs(v); });
      } else if (variant == kP0) {
        result = sum_of([](Value v) { return (v != 0.0f).to(DType::kF32); });
      } else if (variant == kPOther) {
        result = k.pow(sum_of([&](Value v) { return k.pow(k.abs(v), p); }), 1.0f / p);
      } else {
        bool is_max = variant == kPInf;
        result = extreme_of(
            is_max, [&](Value v) { return k.abs(v); }, is_max ? k.constant(0.0f, acc) : hi,
            &saw_nan);
        result = k.where(saw_nan, nan, result);
      }
      break;
    }
    case Kind::kLogsumexp: {
      Value saw_nan;
      Value mx = extreme_of(true, identity, lo, &saw_nan);
      Value s = sum_of([&](Value v) { return k.exp(v - mx.col()); });
      result = k.where((mx == lo) | (mx == hi), mx, mx + k.log(s));
      result = k.where(saw_nan, nan, result);
      break;
    }
    case Kind::kAll:
    case Kind::kAny: {
      bool all = kind == Kind::kAll;
      Value init = k.constant(all ? 1 : 0, DType::kI64);
      result = extreme_of(!all, identity, init, nullptr);
      break;
    }
    case Kind::kArgMax:
    case Kind::kArgMin: {
      bool is_max = kind == Kind::kArgMax;
      Value fill = is_max ? lo : hi;
      Value best0 = fill.broadcast_to({bm});
      Value idx0 = k.full({bm}, 0, DType::kI32);
      Value nan0 = n.broadcast_to({bm});
      auto r =
          pass({best0, idx0, nan0}, [&](std::vector<Value> c, Value v, Value valid, Value cols) {
            Value ok = valid & !is_nan(v);
            Value key = k.where(ok, v, tile(fill));
            Value ci = is_max ? k.argmax(key, 1) : k.argmin(key, 1);
            Value cv = is_max ? k.max(key, 1) : k.min(key, 1);
            Value better = is_max ? cv > c[0] : cv < c[0];
            Value start = k.min(cols, 0);
            Value first_nan = k.min(k.where(valid & is_nan(v), cols.row().broadcast_to({bm, bn}),
                                            n.broadcast_to({bm, bn})),
                                    1);
            return std::vector<Value>{k.where(better, cv, c[0]), k.where(better, ci + start, c[1]),
                                      k.minimum(c[2], first_nan)};
          });
      Value idx = k.where(r[2] < n, r[2], r[1]);
      if (with_values) {
        k.store(idx_out.ptr + out_offset(idx_out), idx.to(DType::kI64), rmask);
        Value v = k.load(x.ptr + base + col_offset(idx), rmask, 0);
        k.store(out.ptr + out_offset(out), v, rmask);
      } else {
        k.store(out.ptr + out_offset(out), idx.to(DType::kI64), rmask);
      }
      return;
    }
  }
  k.store(out.ptr + out_offset(out), result.to(out_dtype), rmask);
}

std::string kind_name(Kind kind) {
  static const char* names[] = {"sum",  "mean",      "prod", "amax", "amin",  "var",    "std",
                                "norm", "logsumexp", "all",  "any",  "count", "argmax", "argmin"};
  return names[static_cast<int>(kind)];
}

int norm_variant(const Attrs& attrs, double* p_out) {
  double p = 2;
  if (attrs.has("p")) {
    const auto& v = attrs.items().at("p").value();
    if (auto* s = std::get_if<std::string>(&v))
      p = *s == "inf" ? kInf : (*s == "-inf" ? -kInf : 2);
    else
      p = attrs.get_double("p", 2);
  }
  *p_out = p;
  if (p == 2) return kP2;
  if (p == 1) return kP1;
  if (p == 0) return kP0;
  if (p == kInf) return kPInf;
  if (p == -kInf) return kPNegInf;
  return kPOther;
}

void run_reduce(Kind kind, bool with_values, KernelArgs& args) {
  const Tensor& x = args.inputs[0];
  bool arg = kind == Kind::kArgMax || kind == Kind::kArgMin;
  std::vector<int> dims;
  bool keepdim = args.attrs.get_bool("keepdim", false);
  if (arg) {
    if (args.attrs.has("dim") && x.dim() > 0)
      dims = {normalize_dim(args.attrs.get_int("dim", 0), x.dim())};
    else
      for (int d = 0; d < x.dim(); ++d) dims.push_back(d);
    if (!args.attrs.has("dim")) keepdim = keepdim && x.dim() > 0;
  } else {
    dims = normalize_dims(args.attrs.get_ints("dims", {}), x.dim());
  }
  std::vector<Tensor> outs = args.outputs;
  if (x.dim() == 0) keepdim = false;
  Plan plan = make_plan(kind_name(kind), x, dims, outs, keepdim && x.dim() > 0);
  if (plan.rows == 0) return;
  DType out_dtype = args.outputs[0].dtype();
  double p = 2;
  int variant = kind == Kind::kNorm ? norm_variant(args.attrs, &p) : 0;
  std::string key = "reduce_" + kind_name(kind) + (with_values ? "_values" : "") + "_" +
                    std::string(dtype_name(x.dtype())) + "_to_" +
                    std::string(dtype_name(out_dtype)) + "_rr" + std::to_string(plan.rr) + "_v" +
                    std::to_string(variant);
  DType in = x.dtype();
  int rr = plan.rr;
  const Kernel& kernel = cached_kernel(key, [&] {
    return std::make_unique<Kernel>(
        "gen_" + key,
        [=](KernelBuilder& k) { build_reduce(k, kind, variant, in, out_dtype, rr, with_values); },
        std::vector<Config>{config_for(0), config_for(1 << 20)});
  });
  bool float_acc = is_floating(in) || is_floating(out_dtype);
  bool count_like = kind == Kind::kAll || kind == Kind::kAny || kind == Kind::kCount;
  std::vector<compiler::Arg> launch_args{plan.x, plan.out};
  if (arg && with_values) launch_args.emplace_back(plan.out2);
  if (float_acc && !count_like) {
    launch_args.emplace_back(-kInf);
    launch_args.emplace_back(kInf);
  } else {
    launch_args.emplace_back(std::numeric_limits<int64_t>::min());
    launch_args.emplace_back(std::numeric_limits<int64_t>::max());
  }
  double denom =
      std::max(0.0, static_cast<double>(plan.n) - args.attrs.get_double("correction", 1));
  launch_args.emplace_back(denom);
  launch_args.emplace_back(p);
  Config config = config_for(plan.n);
  int64_t bm = config.get("BM");
  launch(kernel, kind_name(kind), x.device(), compiler::Grid((plan.rows + bm - 1) / bm),
         launch_args, config);
}

std::string refuse_reduce(const KernelArgs& args) {
  for (const Tensor& t : args.outputs)
    if (t.dtype() == DType::kF64 || t.dtype() == DType::kI16 || t.dtype() == DType::kI8 ||
        t.dtype() == DType::kU8)
      return "output dtype " + std::string(dtype_name(t.dtype())) + " not served";
  return "";
}

}  // namespace

void register_reductions(Registry& r) {
  const std::vector<DType> floats = kGenFloats;
  std::vector<DType> numeric = kGenFloats, all = kGenFloats;
  numeric.insert(numeric.end(), kGenInts.begin(), kGenInts.end());
  all = numeric;
  all.push_back(DType::kBool);
  struct Entry {
    const char* op;
    Kind kind;
    std::vector<DType> dtypes;
    bool with_values;
  };
  for (const Entry& e : std::vector<Entry>{{"sum", Kind::kSum, all, false},
                                           {"mean", Kind::kMean, floats, false},
                                           {"prod", Kind::kProd, all, false},
                                           {"amax", Kind::kAmax, numeric, false},
                                           {"amin", Kind::kAmin, numeric, false},
                                           {"var", Kind::kVar, floats, false},
                                           {"std", Kind::kStd, floats, false},
                                           {"norm", Kind::kNorm, floats, false},
                                           {"logsumexp", Kind::kLogsumexp, floats, false},
                                           {"all", Kind::kAll, all, false},
                                           {"any", Kind::kAny, all, false},
                                           {"count_nonzero", Kind::kCount, all, false},
                                           {"argmax", Kind::kArgMax, numeric, false},
                                           {"argmin", Kind::kArgMin, numeric, false},
                                           {"max", Kind::kArgMax, numeric, true},
                                           {"min", Kind::kArgMin, numeric, true}}) {
    Kind kind = e.kind;
    bool with_values = e.with_values;
    add_generated(
        r, e.op, e.dtypes,
        [kind, with_values](KernelArgs& args) { run_reduce(kind, with_values, args); },
        refuse_reduce);
  }
}

}  // namespace flagstone::ops::gen
