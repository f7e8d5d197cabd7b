// Generated data movement: one "remap" kernel, in which every output element reads the input at
// a coordinate computed per dim, serves pad (all modes), repeat, tile, repeat_interleave, flip,
// roll, tril and triu; a "take" kernel serves index_select and gather, a "put" kernel scatter,
// scatter_add and index_put; masked_fill has its own. Moving elements needs only
// their width, so kernels are built per element size and serve every dtype of that size.
#include <array>

#include "generated/flat.h"
#include "internal.h"
#include "shape_rules.h"

namespace flagstone::ops::gen {
namespace {

constexpr int kRank = kFlatRank;
const Config kConfig{{"BLOCK", 1024}, {"num_warps", 4}};

// How a dim's source coordinate t = (c / div) * mul + add is brought back into [0, size): the
// same rule for every dim of one call (dims that need none never leave the range).
enum class Fold { kCheck, kWrap, kClamp, kReflect };
enum class Tri { kNone, kLower, kUpper };

struct DimRule {
  int64_t div = 1, mul = 1, add = 0;
};

struct Remap {
  std::array<DimRule, kRank> dims;
  Fold fold = Fold::kCheck;
  Tri tri = Tri::kNone;
  int64_t diagonal = 0;
  int64_t fill = 0;  // bits of the fill value
};

const std::vector<DType> kMoveTypes{DType::kF32, DType::kF16, DType::kBF16, DType::kF64,
                                    DType::kI64, DType::kI32, DType::kI16,  DType::kI8,
                                    DType::kU8,  DType::kBool};

}  // namespace

DType bits_dtype(DType dtype) {
  switch (dtype_size(dtype)) {
    case 8:
      return DType::kI64;
    case 4:
      return DType::kI32;
    case 2:
      return DType::kI16;
    default:
      return DType::kU8;
  }
}

Tensor as_bits(const Tensor& t) {
  return t.view_as_dtype(bits_dtype(t.dtype()));
}

int64_t value_bits(double value, DType dtype) {
  if (value == 0) return 0;  // zero is all-zero bits in every dtype
  Tensor one =
      call("full", {},
           {{"shape", Shape{}}, {"value", value}, {"dtype", std::string(dtype_name(dtype))}})[0];
  Tensor bits = as_bits(one);
  switch (bits.dtype()) {
    case DType::kI64:
      return bits.to_vector<int64_t>()[0];
    case DType::kI32:
      return bits.to_vector<int32_t>()[0];
    case DType::kI16:
      return bits.to_vector<int16_t>()[0];
    default:
      return bits.to_vector<uint8_t>()[0];
  }
}

namespace {

std::string key_of(const char* kind, DType dtype, int a, int b) {
  return std::string("move_") + kind + "_" + std::string(dtype_name(dtype)) + "_" +
         std::to_string(a) + "_" + std::to_string(b);
}

void build_remap(KernelBuilder& k, DType dtype, Fold fold, Tri tri) {
  int64_t block = k.meta("BLOCK");
  TensorArg in = k.tensor_arg("in", dtype, kRank);
  TensorArg out = k.tensor_arg("out", dtype, kRank);
  std::vector<Value> div, mul, add;
  for (int d = 0; d < kRank; ++d) {
    div.push_back(k.scalar_arg("div" + std::to_string(d), DType::kI32));
    mul.push_back(k.scalar_arg("mul" + std::to_string(d), DType::kI32));
    add.push_back(k.scalar_arg("add" + std::to_string(d), DType::kI32));
  }
  Value fill = k.scalar_arg("fill", DType::kI64);  // the fill value's bits
  Value diagonal = k.scalar_arg("diagonal", DType::kI32);
  Value n = k.scalar_arg("n", DType::kI32);
  auto [offs, valid] = flat_block(k, n);
  auto c = flat_coords(offs, out);
  Coords src;
  for (int d = 0; d < kRank; ++d) {
    auto i = static_cast<size_t>(d);
    Value size = in.size(d);
    Value t = c[i] / div[i] * mul[i] + add[i];
    switch (fold) {
      case Fold::kCheck:
        valid = valid & (t >= 0) & (t < size);
        break;
      case Fold::kWrap:
        t = (t % size + size) % size;
        break;
      case Fold::kClamp:
        t = k.minimum(k.maximum(t, k.zeros({block}, DType::kI32)), size - 1);
        break;
      case Fold::kReflect:
        t = k.where(t < 0, -t, t);
        t = k.where(t >= size, (size - 1) * 2 - t, t);
        break;
    }
    src[i] = t;
  }
  if (tri != Tri::kNone) {
    Value gap = c[kRank - 1] - c[kRank - 2];
    valid = valid & (tri == Tri::kLower ? gap <= diagonal : gap >= diagonal);
  }
  // Out-of-range coordinates are never dereferenced: the load is masked on `valid`.
  Value v = k.load(in.ptr + flat_offset(src, in), valid, 0);
  Value filler = fill.to(dtype).broadcast_to({block});
  k.store(out.ptr + flat_offset(c, out), k.where(valid, v, filler), offs < n);
}

// `in` must already have out's rank (<= kRank); dims are shifted right to kRank.
void run_remap(std::string_view op, const Tensor& in_values, const Tensor& out_values, Remap r) {
  int64_t n = out_values.numel();
  if (n == 0) return;
  Tensor in = as_bits(in_values), out = as_bits(out_values);
  int shift = kRank - out.dim();
  std::rotate(r.dims.begin(), r.dims.end() - shift, r.dims.end());
  for (int d = 0; d < shift; ++d) r.dims[static_cast<size_t>(d)] = DimRule{};
  DType dtype = out.dtype();
  Fold fold = r.fold;
  Tri tri = r.tri;
  std::string key = key_of("remap", dtype, static_cast<int>(fold), static_cast<int>(tri));
  std::vector<compiler::Arg> args{to_flat_rank(in), to_flat_rank(out)};
  for (const DimRule& d : r.dims) {
    args.emplace_back(d.div);
    args.emplace_back(d.mul);
    args.emplace_back(d.add);
  }
  args.emplace_back(r.fill);
  args.emplace_back(r.diagonal);
  args.emplace_back(n);
  launch_flat(
      op, key, [=](KernelBuilder& k) { build_remap(k, dtype, fold, tri); }, kConfig, out.device(),
      n, args);
}

// Ops whose output is a reshaped view of the computed one compute into a dense temporary when
// the output cannot take that view.
void run_remap_reshaped(std::string_view op, const Tensor& in, const Tensor& out,
                        const Shape& shape, const Remap& r) {
  if (out.is_contiguous()) {
    run_remap(op, in, out.view(shape), r);
    return;
  }
  Tensor tmp = Tensor::empty(shape, out.dtype(), out.device());
  run_remap(op, in, tmp, r);
  Tensor target = out;
  target.copy_(tmp.view(out.shape()));
}

void pad(KernelArgs& args) {
  const Tensor& x = args.inputs[0];
  auto pads = args.attrs.get_ints("pads", {});
  std::string mode = args.attrs.get_string("mode", "constant");
  Remap r;
  r.fold = mode == "constant"    ? Fold::kCheck
           : mode == "reflect"   ? Fold::kReflect
           : mode == "replicate" ? Fold::kClamp
                                 : Fold::kWrap;
  r.fill = value_bits(args.attrs.get_double("value", 0), x.dtype());
  for (size_t p = 0; p < pads.size() / 2; ++p)
    r.dims[static_cast<size_t>(x.dim() - 1 - static_cast<int>(p))].add = -pads[2 * p];
  run_remap("pad", x, args.outputs[0], r);
}

void repeat(KernelArgs& args) {
  const Tensor& out = args.outputs[0];
  Tensor x = args.inputs[0];
  while (x.dim() < out.dim()) x = x.unsqueeze(0);
  Remap r;
  r.fold = Fold::kWrap;
  run_remap("repeat", x, out, r);
}

void repeat_interleave(KernelArgs& args) {
  bool has_dim = args.attrs.has("dim");
  Tensor x = has_dim ? args.inputs[0] : args.inputs[0].reshape({-1});
  int d = has_dim ? normalize_dim(args.attrs.get_int("dim", 0), x.dim()) : 0;
  Remap r;
  if (x.dim() > 0)
    r.dims[static_cast<size_t>(d)].div = std::max<int64_t>(1, args.attrs.int_at("repeats"));
  Shape shape = x.shape();
  if (!shape.empty()) shape[static_cast<size_t>(d)] *= args.attrs.int_at("repeats");
  run_remap_reshaped("repeat_interleave", x, args.outputs[0], shape, r);
}

void flip(KernelArgs& args) {
  const Tensor& x = args.inputs[0];
  Remap r;
  auto dims = args.attrs.get_ints("dims", {});
  for (int d : dims.empty() ? std::vector<int>{} : normalize_dims(dims, x.dim())) {
    r.dims[static_cast<size_t>(d)].mul = -1;
    r.dims[static_cast<size_t>(d)].add = x.size(d) - 1;
  }
  run_remap("flip", x, args.outputs[0], r);
}

void roll(KernelArgs& args) {
  auto shifts = args.attrs.get_ints("shifts", {});
  auto dims = args.attrs.get_ints("dims", {});
  bool flat = dims.empty();
  Tensor x = flat ? args.inputs[0].reshape({-1}) : args.inputs[0];
  if (flat) dims = {0};
  Remap r;
  r.fold = Fold::kWrap;
  for (size_t i = 0; i < dims.size(); ++i) {
    int d = normalize_dim(dims[i], x.dim());
    r.dims[static_cast<size_t>(d)].add -= shifts[i];
  }
  run_remap_reshaped("roll", x, args.outputs[0], x.shape(), r);
}

void triangle(KernelArgs& args, bool lower) {
  Remap r;
  r.tri = lower ? Tri::kLower : Tri::kUpper;
  r.diagonal = args.attrs.get_int("diagonal", 0);
  run_remap(lower ? "tril" : "triu", args.inputs[0], args.outputs[0], r);
}

// out = mask ? fill : in, with the mask broadcast (stride 0) over in's dims.
void build_masked_fill(KernelBuilder& k, DType dtype) {
  int64_t block = k.meta("BLOCK");
  TensorArg in = k.tensor_arg("in", dtype, kRank);
  TensorArg mask = k.tensor_arg("mask", DType::kBool, kRank);
  TensorArg out = k.tensor_arg("out", dtype, kRank);
  Value fill = k.scalar_arg("fill", DType::kI64);  // the fill value's bits
  Value n = k.scalar_arg("n", DType::kI32);
  auto [offs, valid] = flat_block(k, n);
  auto c = flat_coords(offs, out);
  Value m = k.load(mask.ptr + flat_offset(c, mask), valid, 0);
  Value v = k.load(in.ptr + flat_offset(c, in), valid, 0);
  k.store(out.ptr + flat_offset(c, out), k.where(m, fill.to(dtype).broadcast_to({block}), v),
          valid);
}

void masked_fill(KernelArgs& args) {
  const Tensor& out_values = args.outputs[0];
  int64_t n = out_values.numel();
  if (n == 0) return;
  Tensor in = as_bits(args.inputs[0]), out = as_bits(out_values);
  Tensor mask = restride(args.inputs[1], in.shape(), broadcast_strides(args.inputs[1], in.shape()));
  DType dtype = out.dtype();
  std::string key = key_of("masked_fill", dtype, 0, 0);
  std::vector<compiler::Arg> launch_args{to_flat_rank(in), to_flat_rank(mask), to_flat_rank(out)};
  launch_args.emplace_back(value_bits(args.attrs.double_at("value"), out_values.dtype()));
  launch_args.emplace_back(n);
  launch_flat(
      "masked_fill", key, [=](KernelBuilder& k) { build_masked_fill(k, dtype); }, kConfig,
      out.device(), n, launch_args);
}

// Index values as torch reads them: a negative one counts from the end of the dim.
Value from_end(KernelBuilder& k, Value i, Value size) {
  return k.where(i < 0, i + size, i);
}

// out[c] = in[c with c[dim] = index[index_offset(c)]].
void build_take(KernelBuilder& k, DType dtype, DType index_dtype, int dim) {
  TensorArg in = k.tensor_arg("in", dtype, kRank);
  TensorArg index = k.tensor_arg("index", index_dtype, kRank);
  TensorArg out = k.tensor_arg("out", dtype, kRank);
  Value n = k.scalar_arg("n", DType::kI32);
  auto [offs, mask] = flat_block(k, n);
  auto c = flat_coords(offs, out);
  Value i = k.load(index.ptr + flat_offset(c, index), mask, 0).to(DType::kI32);
  Value size = in.size(dim);
  auto src = c;
  src[static_cast<size_t>(dim)] = from_end(k, i, size);
  k.store(out.ptr + flat_offset(c, out), k.load(in.ptr + flat_offset(src, in), mask, 0), mask);
}

// Indices are checked on the device's copy before the kernel runs, so a bad index is an error
// naming the op rather than a wild read (as the reference reports it).
void check_indices(std::string_view op, const Tensor& index, int64_t size) {
  if (index.numel() == 0) return;
  Tensor wide = as_dtype(index, DType::kI64);
  int64_t lo = call("amin", {wide})[0].to(Device()).to_vector<int64_t>()[0];
  int64_t hi = call("amax", {wide})[0].to(Device()).to_vector<int64_t>()[0];
  FS_CHECK(lo >= -size && hi < size, kInvalidArgument, "op '", op, "': index ",
           lo < -size ? lo : hi, " is out of range for size ", size);
}

void take(std::string_view op, const Tensor& x_values, const Tensor& index,
          const Tensor& out_values, int dim) {
  int64_t n = out_values.numel();
  if (n == 0) return;
  check_indices(op, index, x_values.size(dim));
  Tensor x = as_bits(x_values), out = as_bits(out_values);
  int shift = kRank - out.dim();
  DType dtype = out.dtype();
  DType index_dtype = index.dtype();
  int rdim = dim + shift;
  std::string key = key_of("take", dtype, rdim, static_cast<int>(index_dtype));
  std::vector<compiler::Arg> args{to_flat_rank(x), to_flat_rank(index), to_flat_rank(out)};
  args.emplace_back(n);
  launch_flat(
      op, key, [=](KernelBuilder& k) { build_take(k, dtype, index_dtype, rdim); }, kConfig,
      out.device(), n, args);
}

void index_select(KernelArgs& args) {
  const Tensor& x = args.inputs[0];
  const Tensor& out = args.outputs[0];
  if (x.dim() == 0) {
    check_indices("index_select", args.inputs[1], 1);
    Tensor target = out;
    target.copy_(x);
    return;
  }
  int d = normalize_dim(args.attrs.int_at("dim"), x.dim());
  // The 1-d index seen with out's rank: stride 1 along dim, broadcast elsewhere.
  Tensor index = args.inputs[1].reshape({-1});
  Shape sizes = out.shape(), strides(out.shape().size(), 0);
  strides[static_cast<size_t>(d)] = index.stride(0);
  take("index_select", x, restride(index, sizes, strides), out, d);
}

void gather(KernelArgs& args) {
  const Tensor& x = args.inputs[0];
  if (x.dim() == 0) {
    check_indices("gather", args.inputs[1], 1);
    Tensor target = args.outputs[0];
    target.copy_(x);
    return;
  }
  int d = normalize_dim(args.attrs.int_at("dim"), x.dim());
  take("gather", x, args.inputs[1], args.outputs[0], d);
}

std::string index_supports(const KernelArgs& args) {
  std::string why = flat_rank_check(args);
  if (why.empty() && args.inputs[1].dtype() != DType::kI64 && args.inputs[1].dtype() != DType::kI32)
    why = "index of dtype " + std::string(dtype_name(args.inputs[1].dtype()));
  return why;
}

// out[c with c[dim] = index[c]] = src[c] (or += with `accumulate`), over the coordinates of
// index's sizes: scatter, scatter_add and index_put.
void build_put(KernelBuilder& k, DType dtype, DType index_dtype, int dim, bool accumulate) {
  TensorArg src = k.tensor_arg("src", dtype, kRank);
  TensorArg index = k.tensor_arg("index", index_dtype, kRank);
  TensorArg out = k.tensor_arg("out", dtype, kRank);
  Value n = k.scalar_arg("n", DType::kI32);
  auto [offs, mask] = flat_block(k, n);
  auto c = flat_coords(offs, index);
  Value i = k.load(index.ptr + flat_offset(c, index), mask, 0).to(DType::kI32);
  Value v = k.load(src.ptr + flat_offset(c, src), mask, 0);
  auto dst = c;
  dst[static_cast<size_t>(dim)] = from_end(k, i, out.size(dim));
  if (accumulate)
    k.atomic_add(out.ptr + flat_offset(dst, out), v, mask);
  else
    k.store(out.ptr + flat_offset(dst, out), v, mask);
}

// `src` and `index` already have index's sizes (src may be a broadcast view); `out` holds the
// input's values. Plain puts move bits; accumulating ones add in f32 or i32 (the atomics every
// target has), through an f32 copy for f16 and bf16.
void put(std::string_view op, const Tensor& src_values, const Tensor& index,
         const Tensor& out_values, int dim, bool accumulate) {
  int64_t n = index.numel();
  if (n == 0) return;
  check_indices(op, index, out_values.size(dim));
  Tensor src = src_values, out = out_values, wide;
  if (!accumulate) {
    src = as_bits(src_values), out = as_bits(out_values);
  } else if (out.dtype() == DType::kF16 || out.dtype() == DType::kBF16) {
    wide = as_dtype(out_values, DType::kF32);  // a new tensor: the cast never aliases
    src = as_dtype(src_values, DType::kF32), out = wide;
  }
  int shift = kRank - out.dim();
  DType dtype = out.dtype(), index_dtype = index.dtype();
  int rdim = dim + shift;
  std::string key =
      key_of(accumulate ? "put_add" : "put", dtype, rdim, static_cast<int>(index_dtype));
  std::vector<compiler::Arg> args{to_flat_rank(src), to_flat_rank(index), to_flat_rank(out)};
  args.emplace_back(n);
  launch_flat(
      op, key, [=](KernelBuilder& k) { build_put(k, dtype, index_dtype, rdim, accumulate); },
      kConfig, out.device(), n, args);
  if (wide.defined()) {
    Tensor target = out_values;
    target.copy_(as_dtype(wide, out_values.dtype()));
  }
}

void scatter(KernelArgs& args, bool add) {
  const Tensor &x = args.inputs[0], &index = args.inputs[1], &src = args.inputs[2];
  Tensor out = args.outputs[0];
  out.copy_(x);
  int d = normalize_dim(args.attrs.int_at("dim"), x.dim());
  bool accumulate = add || args.attrs.get_string("reduce", "none") == "add";
  put(add ? "scatter_add" : "scatter", restride(src, index.shape(), src.strides()), index, out, d,
      accumulate);
}

void index_put(KernelArgs& args) {
  const Tensor &x = args.inputs[0], &index = args.inputs[1];
  Tensor out = args.outputs[0];
  out.copy_(x);
  Shape rows = x.shape();
  rows[0] = index.numel();
  Tensor values = args.inputs[2].expand(rows);
  Shape strides(rows.size(), 0);
  strides[0] = index.stride(0);
  put("index_put", values, restride(index, rows, strides), out, 0,
      args.attrs.get_bool("accumulate", false));
}

// Accumulating puts need an atomic add of the dtype (f32, i32; f16 and bf16 through f32).
std::string put_supports(const KernelArgs& args, bool add) {
  std::string why = index_supports(args);
  if (why.empty() && args.inputs[0].dim() == 0) why = "0-d input";
  bool accumulate = add || args.attrs.get_string("reduce", "none") == "add" ||
                    args.attrs.get_bool("accumulate", false);
  DType d = args.inputs[0].dtype();
  if (why.empty() && accumulate && d != DType::kF32 && d != DType::kI32 && d != DType::kF16 &&
      d != DType::kBF16)
    why = "accumulating " + std::string(dtype_name(d)) + " (no atomic add of that type)";
  return why;
}

}  // namespace

void register_movement(Registry& r) {
  add_generated(r, "pad", kMoveTypes, pad, flat_rank_check);
  add_generated(r, "repeat", kMoveTypes, repeat, flat_rank_check);
  add_generated(r, "tile", kMoveTypes, repeat, flat_rank_check);
  add_generated(r, "repeat_interleave", kMoveTypes, repeat_interleave, flat_rank_check);
  add_generated(r, "flip", kMoveTypes, flip, flat_rank_check);
  add_generated(r, "roll", kMoveTypes, roll, flat_rank_check);
  add_generated(
      r, "tril", kMoveTypes, [](KernelArgs& a) { triangle(a, true); }, flat_rank_check);
  add_generated(
      r, "triu", kMoveTypes, [](KernelArgs& a) { triangle(a, false); }, flat_rank_check);
  add_generated(r, "index_select", kMoveTypes, index_select, index_supports);
  add_generated(r, "masked_fill", kMoveTypes, masked_fill, flat_rank_check);
  add_generated(r, "gather", kMoveTypes, gather, index_supports);
  std::vector<DType> numeric(kMoveTypes.begin(), kMoveTypes.end() - 1);  // no bool
  add_generated(
      r, "scatter", numeric, [](KernelArgs& a) { scatter(a, false); },
      [](const KernelArgs& a) { return put_supports(a, false); });
  add_generated(
      r, "scatter_add", numeric, [](KernelArgs& a) { scatter(a, true); },
      [](const KernelArgs& a) { return put_supports(a, true); });
  add_generated(r, "index_put", numeric, index_put,
                [](const KernelArgs& a) { return put_supports(a, false); });
}

}  // namespace flagstone::ops::gen
