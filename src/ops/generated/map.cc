// The generated elementwise kernel: dims of all operands are collapsed first and the kernel
// indexes three (dense, row-broadcast and batched-broadcast calls all fit; one kernel per body
// and dtypes keeps compile counts low). Layouts with more unmergeable dims are copied dense.
// Two layouts get kernels of their own with no division per element, whose loads and stores the
// code generator can vectorize (on NVIDIA's OpenCL the three-dim kernel ran f32 add at 30% of
// the copy bandwidth): all operands dense (indexed by the flat offset), and rows of unit step
// (a row-broadcast operand, the halves of silu_and_mul's input: a program per row segment).
#include "generated/map.h"

namespace flagstone::ops::gen {
namespace {

constexpr int kMapRank = 3;
// Rows at least this long (and at most a grid's second dimension of them) take kRows.
constexpr int64_t kMinRowLength = 256, kMaxRows = 65535;

enum class Layout { kStrided, kDense, kRows };

int rank_of(Layout layout) {
  return layout == Layout::kDense ? 1 : layout == Layout::kRows ? 2 : kMapRank;
}

// What a layout adds to the kernel cache key.
const char* key_suffix(Layout layout) {
  return layout == Layout::kDense ? "_dense" : layout == Layout::kRows ? "_rows" : "";
}

// The layout of a call from its collapsed dims and strides (out first, then the inputs).
Layout layout_of(const Collapsed& c) {
  bool dense = c.sizes.size() == 1,
       rows = c.sizes.size() == 2 && c.sizes[1] >= kMinRowLength && c.sizes[0] <= kMaxRows;
  for (const Shape& s : c.strides) dense = dense && s[0] == 1, rows = rows && s.back() == 1;
  return dense ? Layout::kDense : rows ? Layout::kRows : Layout::kStrided;
}
// 1024 elements per program: 8 per thread at 4 warps, enough work to hide memory latency.
const Config kMapConfig{{"BLOCK", 1024}, {"num_warps", 4}};

std::string kernel_name(const std::string& key) {
  std::string name = "gen_";
  for (char c : key) name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return name;
}

// kStrided: rank-3 operands indexed from the flat offset's coordinates. kDense: rank 1, unit
// stride, the flat offset itself. kRows: rank 2, unit steps along the rows; the grid's second
// dimension picks the row, the first a segment of it.
void build_map(KernelBuilder& k, const MapBody& body, int variant, const std::vector<DType>& in,
               DType out_dtype, const std::vector<DType>& scalars, Layout layout) {
  const int rank = rank_of(layout);
  int64_t block = k.meta("BLOCK");
  std::vector<TensorArg> ins;
  for (size_t i = 0; i < in.size(); ++i)
    ins.push_back(k.tensor_arg("in" + std::to_string(i), in[i], rank));
  TensorArg out = k.tensor_arg("out", out_dtype, rank);
  std::vector<Value> s;
  for (size_t i = 0; i < scalars.size(); ++i)
    s.push_back(k.scalar_arg("s" + std::to_string(i), scalars[i]));
  Value n = k.scalar_arg("n", DType::kI32);
  Value offs = k.program_id(0) * block + k.arange(0, block);
  Value mask = layout == Layout::kRows ? offs < out.size(1) : offs < n;
  std::vector<Value> coord(static_cast<size_t>(rank));
  if (layout == Layout::kStrided) {
    Value rest = offs;
    for (int d = rank - 1; d > 0; --d) {
      coord[static_cast<size_t>(d)] = rest % out.size(d);
      rest = rest / out.size(d);
    }
    coord[0] = rest;
  }
  auto offset = [&](const TensorArg& t) {
    if (layout == Layout::kDense) return offs;
    if (layout == Layout::kRows) return k.program_id(1) * t.stride(0) + offs;
    Value o = coord[0] * t.stride(0);
    for (int d = 1; d < rank; ++d) o = o + coord[static_cast<size_t>(d)] * t.stride(d);
    return o;
  };
  std::vector<Value> x;
  for (size_t i = 0; i < ins.size(); ++i) {
    Value v = k.load(ins[i].ptr + offset(ins[i]), mask, 0);
    x.push_back(v.to(compute_dtype(in[i])));
  }
  Value r = body(k, x, s, variant);
  k.store(out.ptr + offset(out), r.to(out_dtype), mask);
}

}  // namespace

void run_map(std::string_view op, const std::string& key, const MapBody& body, int variant,
             const std::vector<Tensor>& inputs, const Tensor& out,
             const std::vector<Scalar>& scalars) {
  int64_t n = out.numel();
  if (n == 0) return;
  std::vector<Shape> strides{out.strides()};
  for (const Tensor& t : inputs) strides.push_back(broadcast_strides(t, out.shape()));
  Collapsed c = collapse(out.shape(), strides);
  if (c.sizes.size() > static_cast<size_t>(kMapRank)) {
    // Rare layouts: dense copies (the runtime's strided copy), then the rank-1 case.
    std::vector<Tensor> dense;
    for (const Tensor& t : inputs) dense.push_back(t.expand(out.shape()).contiguous());
    Tensor tmp = Tensor::empty(out.shape(), out.dtype(), out.device());
    run_map(op, key, body, variant, dense, tmp, scalars);
    Tensor target = out;
    target.copy_(tmp);
    return;
  }
  const Layout layout = layout_of(c);
  pad_rank(c, static_cast<size_t>(rank_of(layout)));

  std::vector<DType> in_dtypes, scalar_dtypes;
  std::string full_key = "map_" + key + "_";
  for (const Tensor& t : inputs) {
    in_dtypes.push_back(t.dtype());
    full_key += std::string(dtype_name(t.dtype())) + "_";
  }
  full_key += "to_" + std::string(dtype_name(out.dtype()));
  for (const Scalar& s : scalars) {
    scalar_dtypes.push_back(s.dtype);
    full_key += "_s" + std::string(dtype_name(s.dtype));
  }
  full_key += "_v" + std::to_string(variant) + key_suffix(layout);
  DType out_dtype = out.dtype();
  const Kernel& kernel = cached_kernel(full_key, [&] {
    return std::make_unique<Kernel>(
        kernel_name(full_key),
        [=](KernelBuilder& k) {
          build_map(k, body, variant, in_dtypes, out_dtype, scalar_dtypes, layout);
        },
        std::vector<Config>{kMapConfig});
  });

  std::vector<compiler::Arg> args;
  for (size_t i = 0; i < inputs.size(); ++i)
    args.emplace_back(restride(inputs[i], c.sizes, c.strides[i + 1]));
  args.emplace_back(restride(out, c.sizes, c.strides[0]));
  for (const Scalar& s : scalars) {
    if (s.dtype == DType::kI64)
      args.emplace_back(s.i);
    else
      args.emplace_back(s.f);
  }
  args.emplace_back(n);
  int64_t block = kMapConfig.get("BLOCK");
  compiler::Grid grid = layout == Layout::kRows
                            ? compiler::Grid((c.sizes[1] + block - 1) / block, c.sizes[0])
                            : compiler::Grid((n + block - 1) / block);
  launch(kernel, op, out.device(), grid, args);
}

}  // namespace flagstone::ops::gen
