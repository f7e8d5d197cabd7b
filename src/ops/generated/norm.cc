// Generated row kernels: softmax / log_softmax along any dim (online max and sum in one pass,
// a second pass writes), rms_norm, add_rms_norm and layer_norm over the last dim. Statistics in
// f32; f16/bf16 are widened on load and rounded once on store.
#include "generated/rows.h"
#include "shape_rules.h"

namespace flagstone::ops::gen {
namespace {

// Fill for masked-off lanes of max reductions: finite, so exp(fill - fill) never makes NaN.
constexpr float kLowest = -1e30f;

enum Flags { kHasWeight = 1, kHasBias = 2, kLog = 4 };

std::string key_of(const std::string& op, const std::vector<Tensor>& ts, int flags) {
  std::string key = op;
  for (const Tensor& t : ts) key += "_" + std::string(t.defined() ? dtype_name(t.dtype()) : "none");
  return key + "_f" + std::to_string(flags);
}

void build_softmax(KernelBuilder& k, DType dt, int flags, bool unit) {
  TensorArg x = k.tensor_arg("x", dt, 4);
  TensorArg y = k.tensor_arg("y", dt, 4);
  RowGeometry g(k, x, unit);
  Value m0 = k.full({g.bm, g.bn}, kLowest, DType::kF32);
  Value l0 = k.zeros({g.bm, g.bn}, DType::kF32);
  auto stats = g.loop({m0, l0}, [&](Value cols, std::vector<Value> c) {
    Value valid = g.valid(cols);
    Value v = k.where(valid, k.load(g.ptrs(x, cols), valid, 0).to(DType::kF32), m0);
    Value m = k.maximum(c[0], v);
    return std::vector<Value>{m, c[1] * k.exp(c[0] - m) + k.exp(v - m)};
  });
  Value mx = k.max(stats[0], 1);
  Value total = k.sum(stats[1] * k.exp(stats[0] - mx.col()), 1);
  Value log_total = k.log(total);
  g.loop({}, [&](Value cols, std::vector<Value>) {
    Value valid = g.valid(cols);
    Value v = k.load(g.ptrs(x, cols), valid, 0).to(DType::kF32);
    Value r = (flags & kLog) ? v - mx.col() - log_total.col() : k.exp(v - mx.col()) / total.col();
    k.store(g.ptrs(y, cols), r.to(dt), valid);
    return std::vector<Value>{};
  });
}

// rms_norm (flags: weight) and add_rms_norm (residual in, residual_out out, weight always).
void build_rms(KernelBuilder& k, DType dt, DType wdt, int flags, bool add, bool unit) {
  TensorArg x = k.tensor_arg("x", dt, 4);
  TensorArg res, res_out;
  if (add) res = k.tensor_arg("residual", dt, 4);
  TensorArg w;
  if (flags & kHasWeight) w = k.tensor_arg("weight", wdt, 1);
  TensorArg y = k.tensor_arg("y", dt, 4);
  if (add) res_out = k.tensor_arg("residual_out", dt, 4);
  Value eps = k.scalar_arg("eps", DType::kF32);
  RowGeometry g(k, x, unit);
  // The residual sum is rounded to the dtype before it is normalized, as the reference does.
  auto input = [&](Value cols, Value valid) {
    Value v = k.load(g.ptrs(x, cols), valid, 0).to(DType::kF32);
    if (!add) return v;
    Value r = k.load(g.ptrs(res, cols), valid, 0).to(DType::kF32);
    return (v + r).to(dt).to(DType::kF32);
  };
  Value zero = k.zeros({g.bm, g.bn}, DType::kF32);
  auto ss = g.loop({zero}, [&](Value cols, std::vector<Value> c) {
    Value valid = g.valid(cols);
    Value v = input(cols, valid);
    if (add) k.store(g.ptrs(res_out, cols), v.to(dt), valid);
    return std::vector<Value>{c[0] + v * v};
  });
  Value scale = 1.0f / k.sqrt(k.sum(ss[0], 1) / g.n.to(DType::kF32) + eps);
  g.loop({}, [&](Value cols, std::vector<Value>) {
    Value valid = g.valid(cols);
    Value r = input(cols, valid) * scale.col();
    if (flags & kHasWeight)
      r = r * k.load(g.vector_ptrs(w, cols), cols < g.n, 0).to(DType::kF32).row();
    k.store(g.ptrs(y, cols), r.to(dt), valid);
    return std::vector<Value>{};
  });
}

void build_layer_norm(KernelBuilder& k, DType dt, DType wdt, DType bdt, int flags, bool unit) {
  TensorArg x = k.tensor_arg("x", dt, 4);
  TensorArg w, b;
  if (flags & kHasWeight) w = k.tensor_arg("weight", wdt, 1);
  if (flags & kHasBias) b = k.tensor_arg("bias", bdt, 1);
  TensorArg y = k.tensor_arg("y", dt, 4);
  Value eps = k.scalar_arg("eps", DType::kF32);
  RowGeometry g(k, x, unit);
  Value zero = k.zeros({g.bm, g.bn}, DType::kF32);
  Value nf = g.n.to(DType::kF32);
  auto load = [&](Value cols, Value valid) {
    return k.load(g.ptrs(x, cols), valid, 0).to(DType::kF32);
  };
  auto sum = g.loop({zero}, [&](Value cols, std::vector<Value> c) {
    return std::vector<Value>{c[0] + load(cols, g.valid(cols))};
  });
  Value mean = k.sum(sum[0], 1) / nf;
  auto var = g.loop({zero}, [&](Value cols, std::vector<Value> c) {
    Value valid = g.valid(cols);
    Value d = k.where(valid, load(cols, valid) - mean.col(), zero);
    return std::vector<Value>{c[0] + d * d};
  });
  Value rstd = 1.0f / k.sqrt(k.sum(var[0], 1) / nf + eps);
  g.loop({}, [&](Value cols, std::vector<Value>) {
    Value valid = g.valid(cols);
    Value r = (load(cols, valid) - mean.col()) * rstd.col();
    if (flags & kHasWeight)
      r = r * k.load(g.vector_ptrs(w, cols), cols < g.n, 0).to(DType::kF32).row();
    if (flags & kHasBias)
      r = r + k.load(g.vector_ptrs(b, cols), cols < g.n, 0).to(DType::kF32).row();
    k.store(g.ptrs(y, cols), r.to(dt), valid);
    return std::vector<Value>{};
  });
}

void launch_rows(const Kernel& kernel, std::string_view op, const Device& device, int64_t rows,
                 int64_t n, std::vector<compiler::Arg> args) {
  if (rows == 0) return;
  Config config = row_config(n);
  int64_t bm = config.get("BM");
  launch(kernel, op, device, compiler::Grid((rows + bm - 1) / bm), args, config);
}

void run_softmax(KernelArgs& args, bool log) {
  const Tensor& x = args.inputs[0];
  int dim = x.dim() == 0 ? 0 : normalize_dim(args.attrs.get_int("dim", -1), x.dim());
  RowViews v = row_views(args.op, {x, args.outputs[0]}, dim);
  int flags = log ? kLog : 0;
  const bool unit = unit_rows(v);
  std::string key = key_of("softmax", {x}, flags) + (unit ? "_u" : "");
  DType dt = x.dtype();
  const Kernel& kernel = cached_kernel(key, [&] {
    return std::make_unique<Kernel>(
        "gen_" + key, [=](KernelBuilder& k) { build_softmax(k, dt, flags, unit); }, row_configs());
  });
  launch_rows(kernel, args.op, x.device(), v.rows, v.n, {v.views[0], v.views[1]});
}

void run_rms(KernelArgs& args, bool add) {
  const Tensor& x = args.inputs[0];
  Tensor w = add ? args.inputs[2] : (args.inputs.size() > 1 ? args.inputs[1] : Tensor());
  std::vector<Tensor> rowed{x};
  if (add) rowed.push_back(args.inputs[1]);
  rowed.push_back(args.outputs[0]);
  if (add) rowed.push_back(args.outputs[1]);
  RowViews v = row_views(args.op, rowed, x.dim() - 1);
  int flags = w.defined() ? kHasWeight : 0;
  const bool unit = unit_rows(v, {w});
  std::string key = key_of(add ? "add_rms_norm" : "rms_norm", {x, w}, flags) + (unit ? "_u" : "");
  DType dt = x.dtype(), wdt = w.defined() ? w.dtype() : dt;
  const Kernel& kernel = cached_kernel(key, [&] {
    return std::make_unique<Kernel>(
        "gen_" + key, [=](KernelBuilder& k) { build_rms(k, dt, wdt, flags, add, unit); },
        row_configs());
  });
  std::vector<compiler::Arg> la{v.views[0]};
  if (add) la.emplace_back(v.views[1]);
  if (w.defined()) la.emplace_back(w);
  la.emplace_back(v.views[add ? 2 : 1]);
  if (add) la.emplace_back(v.views[3]);
  la.emplace_back(args.attrs.get_double("eps", 1e-6));
  launch_rows(kernel, args.op, x.device(), v.rows, v.n, la);
}

void run_layer_norm(KernelArgs& args) {
  const Tensor& x = args.inputs[0];
  Tensor w = args.inputs.size() > 1 ? args.inputs[1] : Tensor();
  Tensor b = args.inputs.size() > 2 ? args.inputs[2] : Tensor();
  RowViews v = row_views(args.op, {x, args.outputs[0]}, x.dim() - 1);
  int flags = (w.defined() ? kHasWeight : 0) | (b.defined() ? kHasBias : 0);
  const bool unit = unit_rows(v, {w, b});
  std::string key = key_of("layer_norm", {x, w, b}, flags) + (unit ? "_u" : "");
  DType dt = x.dtype(), wdt = w.defined() ? w.dtype() : dt, bdt = b.defined() ? b.dtype() : dt;
  const Kernel& kernel = cached_kernel(key, [&] {
    return std::make_unique<Kernel>(
        "gen_" + key, [=](KernelBuilder& k) { build_layer_norm(k, dt, wdt, bdt, flags, unit); },
        row_configs());
  });
  std::vector<compiler::Arg> la{v.views[0]};
  if (w.defined()) la.emplace_back(w);
  if (b.defined()) la.emplace_back(b);
  la.emplace_back(v.views[1]);
  la.emplace_back(args.attrs.get_double("eps", 1e-5));
  launch_rows(kernel, args.op, x.device(), v.rows, v.n, la);
}

// Weights of another shape than [N] (layer_norm over several dims) stay with the reference.
std::string refuse_norm(const KernelArgs& args) {
  const Tensor& x = args.inputs[0];
  if (x.dim() == 0) return "needs at least 1 dim";
  if (args.op == "layer_norm" && args.attrs.get_int("normalized_ndim", 1) != 1)
    return "normalized_ndim other than 1";
  return "";
}

}  // namespace

void register_norms(Registry& r) {
  add_generated(r, "softmax", kGenFloats, [](KernelArgs& a) { run_softmax(a, false); });
  add_generated(r, "log_softmax", kGenFloats, [](KernelArgs& a) { run_softmax(a, true); });
  add_generated(
      r, "rms_norm", kGenFloats, [](KernelArgs& a) { run_rms(a, false); }, refuse_norm);
  add_generated(
      r, "add_rms_norm", kGenFloats, [](KernelArgs& a) { run_rms(a, true); }, refuse_norm);
  add_generated(r, "layer_norm", kGenFloats, run_layer_norm, refuse_norm);
}

}  // namespace flagstone::ops::gen
