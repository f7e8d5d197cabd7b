// Generated large-model ops: silu_and_mul / gelu_and_mul (the elementwise map over the two
// halves), rotary embedding (neox and gpt-j layouts, partial rotary) and embedding lookup.
// Indices read on the device are clamped into the table so a bad index cannot fault memory;
// the reference (and the cpu kernels) report such indices as errors.
#include "generated/map.h"
#include "generated/math.h"
#include "generated/rows.h"

namespace flagstone::ops::gen {
namespace {

constexpr int64_t kBlock = 1024;
const Config kConfig{{"BLOCK", kBlock}, {"num_warps", 4}};

void run_glu(KernelArgs& args, bool gelu) {
  const Tensor& x = args.inputs[0];
  int64_t d = args.outputs[0].shape().back();
  Tensor gate = x.narrow(x.dim() - 1, 0, d), up = x.narrow(x.dim() - 1, d, d);
  int variant = gelu && args.attrs.get_string("approximate", "none") == "tanh" ? 1 : 0;
  MapBody body = [gelu](KernelBuilder& k, const std::vector<Value>& v, const std::vector<Value>&,
                        int tanh_mode) {
    Value act =
        gelu ? (tanh_mode ? gelu_tanh(k, v[0]) : gelu_erf(k, v[0])) : v[0] * sigmoid(k, v[0]);
    return act * v[1];
  };
  run_map(args.op, gelu ? "gelu_and_mul" : "silu_and_mul", body, variant, {gate, up},
          args.outputs[0]);
}

// x and out as [tokens, heads, head_dim] views: the leading dims (batch..., tokens) must merge.
Tensor token_view(std::string_view op, const Tensor& t) {
  int r = t.dim();
  Shape lead(t.shape().begin(), t.shape().end() - 2),
      lead_strides(t.strides().begin(), t.strides().end() - 2);
  Collapsed c = collapse(lead, {lead_strides});
  FS_CHECK(c.sizes.size() == 1, kUnsupported, "op '", op,
           "': the generated kernel needs the batch and token dims of ", t.describe(), " to merge");
  return restride(t, {c.sizes[0], t.size(r - 2), t.size(r - 1)},
                  {c.strides[0][0], t.stride(r - 2), t.stride(r - 1)});
}

void build_rotary(KernelBuilder& k, DType dt, DType pdt, DType tdt, bool neox) {
  TensorArg x = k.tensor_arg("x", dt, 3);
  TensorArg pos = k.tensor_arg("positions", pdt, 1);
  TensorArg cs = k.tensor_arg("cos", tdt, 2);
  TensorArg sn = k.tensor_arg("sin", tdt, 2);
  TensorArg y = k.tensor_arg("y", dt, 3);
  int64_t block = k.meta("BLOCK");
  Value offs = k.program_id(0) * block + k.arange(0, block);
  Value heads = x.size(1), hd = x.size(2);
  Value mask = offs < x.size(0) * heads * hd;
  Value j = offs % hd, h = (offs / hd) % heads, t = offs / (hd * heads);
  Value half = cs.size(1);
  Value rot = mask & (j < half * 2);
  Value first = neox ? j < half : j % 2 == 0;
  Value i = neox ? k.where(first, j, j - half) : j / 2;
  Value partner = neox ? k.where(first, j + half, j - half) : k.where(first, j + 1, j - 1);
  i = k.where(rot, i, i * 0);
  partner = k.where(rot, partner, j);
  Value p = k.load(pos.ptr + t * pos.stride(0), mask, 0).to(DType::kI32);
  p = k.minimum(k.maximum(p, p * 0), cs.size(0) - 1);
  Value c = k.load(cs.ptr + p * cs.stride(0) + i * cs.stride(1), rot, 1).to(DType::kF32);
  Value s = k.load(sn.ptr + p * sn.stride(0) + i * sn.stride(1), rot, 0).to(DType::kF32);
  Value base = t * x.stride(0) + h * x.stride(1);
  Value v = k.load(x.ptr + base + j * x.stride(2), mask, 0).to(DType::kF32);
  Value w = k.load(x.ptr + base + partner * x.stride(2), rot, 0).to(DType::kF32);
  Value r = k.where(first, v * c - w * s, v * c + w * s);
  k.store(y.ptr + t * y.stride(0) + h * y.stride(1) + j * y.stride(2), r.to(dt), mask);
}

void run_rotary(KernelArgs& args) {
  const Tensor& x = args.inputs[0];
  Tensor positions = args.inputs[1].contiguous().reshape({-1});
  const Tensor &cos = args.inputs[2], &sin = args.inputs[3];
  const Tensor& out = args.outputs[0];
  if (out.numel() == 0) return;
  Tensor xv = token_view(args.op, x), yv = token_view(args.op, out);
  bool neox = args.attrs.get_string("style", "neox") == "neox";
  std::string key = "rotary_" + std::string(dtype_name(x.dtype())) + "_" +
                    std::string(dtype_name(positions.dtype())) + "_" +
                    std::string(dtype_name(cos.dtype())) + (neox ? "_neox" : "_gptj");
  DType dt = x.dtype(), pdt = positions.dtype(), tdt = cos.dtype();
  const Kernel& kernel = cached_kernel(key, [&] {
    return std::make_unique<Kernel>(
        "gen_" + key, [=](KernelBuilder& k) { build_rotary(k, dt, pdt, tdt, neox); },
        std::vector<Config>{kConfig});
  });
  int64_t n = out.numel();
  launch(kernel, args.op, x.device(), compiler::Grid((n + kBlock - 1) / kBlock),
         {xv, positions, cos, sin, yv});
}

void build_embedding(KernelBuilder& k, DType idt, DType dt) {
  TensorArg idx = k.tensor_arg("indices", idt, 1);
  TensorArg w = k.tensor_arg("weight", dt, 2);
  TensorArg y = k.tensor_arg("y", dt, 2);
  int64_t block = k.meta("BLOCK");
  Value offs = k.program_id(0) * block + k.arange(0, block);
  Value dim = w.size(1);
  Value mask = offs < y.size(0) * dim;
  Value r = offs / dim, j = offs % dim;
  Value row = k.load(idx.ptr + r * idx.stride(0), mask, 0).to(DType::kI32);
  row = k.minimum(k.maximum(row, row * 0), w.size(0) - 1);
  Value v = k.load(w.ptr + row * w.stride(0) + j * w.stride(1), mask, 0);
  k.store(y.ptr + r * y.stride(0) + j * y.stride(1), v, mask);
}

void run_embedding(KernelArgs& args) {
  Tensor idx = args.inputs[0].contiguous().reshape({-1});
  const Tensor& w = args.inputs[1];
  const Tensor& out = args.outputs[0];
  if (out.numel() == 0) return;
  Shape lead(out.shape().begin(), out.shape().end() - 1),
      lead_strides(out.strides().begin(), out.strides().end() - 1);
  Collapsed c = collapse(lead, {lead_strides});
  FS_CHECK(c.sizes.size() == 1, kUnsupported,
           "op 'embedding': the generated kernel needs the output's leading dims to merge");
  Tensor yv = restride(out, {c.sizes[0], w.size(1)}, {c.strides[0][0], out.strides().back()});
  std::string key = "embedding_" + std::string(dtype_name(idx.dtype())) + "_" +
                    std::string(dtype_name(w.dtype()));
  DType idt = idx.dtype(), dt = w.dtype();
  const Kernel& kernel = cached_kernel(key, [&] {
    return std::make_unique<Kernel>(
        "gen_" + key, [=](KernelBuilder& k) { build_embedding(k, idt, dt); },
        std::vector<Config>{kConfig});
  });
  int64_t n = out.numel();
  launch(kernel, args.op, w.device(), compiler::Grid((n + kBlock - 1) / kBlock), {idx, w, yv});
}

// Per-sample losses of cross_entropy into stats [2, N] (loss, counted as 1 or 0 when ignored).
void build_cross_entropy(KernelBuilder& k, DType dt, DType tdt, bool unit) {
  TensorArg x = k.tensor_arg("x", dt, 4);
  TensorArg target = k.tensor_arg("target", tdt, 1);
  TensorArg stats = k.tensor_arg("stats", DType::kF32, 2);
  Value ignore = k.scalar_arg("ignore_index", DType::kI64);
  Value smoothing = k.scalar_arg("label_smoothing", DType::kF32);
  RowGeometry g(k, x, unit);
  Value lowest = k.full({g.bm, g.bn}, -1e30f, DType::kF32);
  Value zero = k.zeros({g.bm, g.bn}, DType::kF32);
  auto load = [&](Value cols, Value valid) {
    return k.load(g.ptrs(x, cols), valid, 0).to(DType::kF32);
  };
  auto st = g.loop({lowest, zero}, [&](Value cols, std::vector<Value> c) {
    Value valid = g.valid(cols);
    Value v = k.where(valid, load(cols, valid), lowest);
    Value m = k.maximum(c[0], v);
    return std::vector<Value>{m, c[1] * k.exp(c[0] - m) + k.exp(v - m)};
  });
  Value mx = k.max(st[0], 1);
  Value lse = mx + k.log(k.sum(st[1] * k.exp(st[0] - mx.col()), 1));
  auto sums = g.loop({zero}, [&](Value cols, std::vector<Value> c) {
    Value valid = g.valid(cols);
    return std::vector<Value>{c[0] + k.where(valid, load(cols, valid) - lse.col(), zero)};
  });
  Value sum_logp = k.sum(sums[0], 1);
  Value t = k.load(target.ptr + g.rows * target.stride(0), g.rmask, 0).to(DType::kI64);
  Value counted = g.rmask & (t != ignore);
  Value tc = k.minimum(k.maximum(t, t * 0), (g.n - 1).to(DType::kI64)).to(DType::kI32);
  Value xt = k.load(g.row_ptrs(x) + tc * x.stride(3), counted, 0).to(DType::kF32);
  Value loss = (1.0f - smoothing) * (lse - xt) - smoothing * sum_logp / g.n.to(DType::kF32);
  Value zero_row = k.zeros({g.bm}, DType::kF32);
  k.store(stats.ptr + g.rows * stats.stride(1), k.where(counted, loss, zero_row), g.rmask);
  k.store(stats.ptr + stats.stride(0) + g.rows * stats.stride(1), counted.to(DType::kF32), g.rmask);
}

void run_cross_entropy(KernelArgs& args) {
  Tensor x = args.inputs[0];
  Tensor target = args.inputs[1];
  if (x.dim() == 1) x = x.unsqueeze(0), target = target.reshape({1});
  const Device& device = x.device();
  int64_t n = x.size(0);
  Tensor stats = Tensor::empty({2, n}, DType::kF32, device);
  RowViews v = row_views(args.op, {x}, 1);
  const bool unit = unit_rows(v);
  std::string key = "cross_entropy_" + std::string(dtype_name(x.dtype())) + "_" +
                    std::string(dtype_name(target.dtype())) + (unit ? "_u" : "");
  DType dt = x.dtype(), tdt = target.dtype();
  const Kernel& kernel = cached_kernel(key, [&] {
    return std::make_unique<Kernel>(
        "gen_" + key, [=](KernelBuilder& k) { build_cross_entropy(k, dt, tdt, unit); },
        row_configs());
  });
  if (n > 0) {
    Config config = row_config(v.n);
    int64_t bm = config.get("BM");
    launch(kernel, args.op, device, compiler::Grid((n + bm - 1) / bm),
           {v.views[0], target, stats, args.attrs.get_int("ignore_index", -100),
            args.attrs.get_double("label_smoothing", 0)},
           config);
  }
  std::string reduction = args.attrs.get_string("reduction", "mean");
  Tensor result;
  if (reduction == "none") {
    result = args.inputs[0].dim() == 1 ? stats.select(0, 0).reshape({}) : stats.select(0, 0);
  } else {
    Tensor sums = call("sum", {stats}, {{"dims", std::vector<int64_t>{1}}})[0];
    result = reduction == "sum" ? sums.select(0, 0)
                                : call("div", {sums.select(0, 0), sums.select(0, 1)})[0];
  }
  std::vector<Tensor> outs{args.outputs[0]};
  call_out("cast", {result}, {{"dtype", std::string(dtype_name(args.outputs[0].dtype()))}}, outs);
}

}  // namespace

void register_llm(Registry& r) {
  add_generated(r, "cross_entropy", kGenFloats, run_cross_entropy);
  add_generated(r, "silu_and_mul", kGenFloats, [](KernelArgs& a) { run_glu(a, false); });
  add_generated(r, "gelu_and_mul", kGenFloats, [](KernelArgs& a) { run_glu(a, true); });
  add_generated(r, "rotary_embedding", kGenFloats, run_rotary);
  std::vector<DType> emb = kGenFloats;
  emb.insert(emb.end(), kGenInts.begin(), kGenInts.end());
  add_generated(r, "embedding", emb, run_embedding);
}

}  // namespace flagstone::ops::gen
