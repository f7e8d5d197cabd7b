// Linear algebra: mm, bmm, addmm, linear, matmul (torch broadcasting rules), weight-only int8
// and GGUF block-quantized (q8_0, q4_0) linear, dequantize; schemas and float64 references.
#include <cstring>

#include "flagstone/base/half.h"
#include "internal.h"
#include "reference/host.h"
#include "shape_rules.h"

namespace flagstone::ops {
namespace {

OpSchema la_schema(const char* name, std::vector<std::string> inputs, const char* attrs,
                   const char* doc) {
  OpSchema s;
  s.name = name;
  s.family = "linalg";
  s.inputs = std::move(inputs);
  s.outputs = {"out"};
  if (*attrs) s.attrs = {attrs};
  s.dtypes = kFloatTypes;
  s.doc = doc;
  return s;
}

// Batched product of row-major [batch, m, k] x [batch, k, n] blocks where each operand's batch
// index comes from a broadcast map.
std::vector<double> batched_mm(const std::vector<double>& a, const std::vector<double>& b,
                               int64_t batch, int64_t m, int64_t k, int64_t n,
                               const ref::BroadcastIndex& ia, const ref::BroadcastIndex& ib) {
  std::vector<double> c(static_cast<size_t>(batch * m * n), 0.0);
  for (int64_t p = 0; p < batch; ++p) {
    const double* A = &a[ia(p) * m * k];
    const double* B = &b[ib(p) * k * n];
    double* C = &c[p * m * n];
    for (int64_t i = 0; i < m; ++i)
      for (int64_t l = 0; l < k; ++l)
        for (int64_t j = 0; j < n; ++j) C[i * n + j] += A[i * k + l] * B[l * n + j];
  }
  return c;
}

// torch.matmul's shape logic: returns (batch shape of a, of b, broadcast batch, m, k, n, out).
struct MatmulShapes {
  Shape a_batch, b_batch, batch, out;
  int64_t m = 1, k = 1, n = 1;
};

MatmulShapes matmul_shapes(const Tensor& a, const Tensor& b) {
  FS_CHECK(a.dim() >= 1 && b.dim() >= 1, kInvalidArgument,
           "matmul needs tensors of at least 1 dim, got ", a.describe(), " and ", b.describe());
  MatmulShapes s;
  Shape as = a.shape(), bs = b.shape();
  bool a_vec = as.size() == 1, b_vec = bs.size() == 1;
  if (a_vec) as.insert(as.begin(), 1);
  if (b_vec) bs.push_back(1);
  s.m = as[as.size() - 2], s.k = as.back(), s.n = bs.back();
  FS_CHECK(bs[bs.size() - 2] == s.k, kInvalidArgument, "inner dims differ: ", a.describe(), " @ ",
           b.describe(), " (", s.k, " vs ", bs[bs.size() - 2], ")");
  s.a_batch = Shape(as.begin(), as.end() - 2);
  s.b_batch = Shape(bs.begin(), bs.end() - 2);
  s.batch = broadcast_shapes(s.a_batch, s.b_batch);
  s.out = s.batch;
  if (!a_vec) s.out.push_back(s.m);
  if (!b_vec) s.out.push_back(s.n);
  return s;
}

// Dequantized values of a q8_0 / q4_0 tensor in logical order.
std::vector<double> dequantize_values(const Tensor& w) {
  Tensor dense = w.is_contiguous() ? w : w.contiguous();
  std::vector<uint8_t> bytes(dense.nbytes());
  if (!bytes.empty()) dense.copy_to_host(bytes.data(), bytes.size());
  std::vector<double> out(static_cast<size_t>(w.numel()));
  const auto& info = dtype_info(w.dtype());
  int64_t blocks = w.numel() / info.block_elements;
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const uint8_t* p = bytes.data() + blk * info.block_bytes;
    uint16_t dbits;
    std::memcpy(&dbits, p, 2);
    double d = f16_bits_to_float(dbits);
    double* o = &out[blk * info.block_elements];
    if (w.dtype() == DType::kQ8_0) {
      for (int j = 0; j < 32; ++j) o[j] = d * static_cast<int8_t>(p[2 + j]);
    } else {
      for (int j = 0; j < 16; ++j) {
        o[j] = d * ((p[2 + j] & 0x0F) - 8);
        o[j + 16] = d * ((p[2 + j] >> 4) - 8);
      }
    }
  }
  return out;
}

void check_quantized_weight(const Tensor& w) {
  FS_CHECK(w.dtype() == DType::kQ8_0 || w.dtype() == DType::kQ4_0, kInvalidArgument,
           "tensor 'weight' is ", w.describe(), "; expected q8_0 or q4_0");
  check_ndim(w, "weight", 2);
}

}  // namespace

void register_linalg_ops(Registry& registry) {
  OpSchema mm = la_schema("mm", {"input", "mat2"}, "", "[m, k] @ [k, n]");
  mm.infer = [](const std::vector<Tensor>& in, const Attrs&) {
    check_dtype_in(in[0], "input", kFloatTypes);
    check_same_dtype(in[0], "input", in[1], "mat2");
    check_ndim(in[0], "input", 2);
    check_ndim(in[1], "mat2", 2);
    FS_CHECK(in[0].size(1) == in[1].size(0), kInvalidArgument,
             "inner dims differ: ", in[0].describe(), " @ ", in[1].describe());
    return std::vector<OutputSpec>{{{in[0].size(0), in[1].size(1)}, in[0].dtype()}};
  };
  mm.reference = [](KernelArgs& args) {
    const Tensor &a = args.inputs[0], &b = args.inputs[1];
    ref::BroadcastIndex one({}, {1});
    ref::store(args.outputs[0], batched_mm(ref::load(a), ref::load(b), 1, a.size(0), a.size(1),
                                           b.size(1), one, one));
  };
  registry.add_schema(std::move(mm));

  OpSchema bmm = la_schema("bmm", {"input", "mat2"}, "", "[b, m, k] @ [b, k, n]");
  bmm.infer = [](const std::vector<Tensor>& in, const Attrs&) {
    check_dtype_in(in[0], "input", kFloatTypes);
    check_same_dtype(in[0], "input", in[1], "mat2");
    check_ndim(in[0], "input", 3);
    check_ndim(in[1], "mat2", 3);
    FS_CHECK(in[0].size(0) == in[1].size(0) && in[0].size(2) == in[1].size(1), kInvalidArgument,
             "bmm shapes ", in[0].describe(), " and ", in[1].describe(), " do not match");
    return std::vector<OutputSpec>{{{in[0].size(0), in[0].size(1), in[1].size(2)}, in[0].dtype()}};
  };
  bmm.reference = [](KernelArgs& args) {
    const Tensor &a = args.inputs[0], &b = args.inputs[1];
    ref::BroadcastIndex ib({a.size(0)}, {a.size(0)});
    ref::store(args.outputs[0], batched_mm(ref::load(a), ref::load(b), a.size(0), a.size(1),
                                           a.size(2), b.size(2), ib, ib));
  };
  registry.add_schema(std::move(bmm));

  OpSchema addmm = la_schema("addmm", {"bias", "input", "mat2"}, "beta=1 alpha=1",
                             "beta*bias + alpha*(input @ mat2)");
  addmm.dispatch_input = 1;
  addmm.infer = [](const std::vector<Tensor>& in, const Attrs&) {
    check_dtype_in(in[1], "input", kFloatTypes);
    check_same_dtype(in[1], "input", in[2], "mat2");
    check_same_dtype(in[1], "input", in[0], "bias");
    check_ndim(in[1], "input", 2);
    check_ndim(in[2], "mat2", 2);
    FS_CHECK(in[1].size(1) == in[2].size(0), kInvalidArgument,
             "inner dims differ: ", in[1].describe(), " @ ", in[2].describe());
    Shape out{in[1].size(0), in[2].size(1)};
    FS_CHECK(broadcast_shapes(in[0].shape(), out) == out, kInvalidArgument, "bias ",
             in[0].describe(), " does not broadcast to ", shape_to_string(out));
    return std::vector<OutputSpec>{{out, in[1].dtype()}};
  };
  addmm.reference = [](KernelArgs& args) {
    const Tensor &bias = args.inputs[0], &a = args.inputs[1], &b = args.inputs[2];
    ref::BroadcastIndex one({}, {1});
    auto c = batched_mm(ref::load(a), ref::load(b), 1, a.size(0), a.size(1), b.size(1), one, one);
    auto bv = ref::load(bias);
    ref::BroadcastIndex ibias(bias.shape(), args.outputs[0].shape());
    double beta = args.attrs.get_double("beta", 1), alpha = args.attrs.get_double("alpha", 1);
    for (size_t i = 0; i < c.size(); ++i)
      c[i] = (beta == 0 ? 0.0 : beta * bv[ibias(static_cast<int64_t>(i))]) + alpha * c[i];
    ref::store(args.outputs[0], c);
  };
  registry.add_schema(std::move(addmm));

  OpSchema linear = la_schema("linear", {"input", "weight", "bias?"}, "",
                              "input @ weight^T + bias, weight [out, in]");
  linear.infer = [](const std::vector<Tensor>& in, const Attrs&) {
    check_dtype_in(in[0], "input", kFloatTypes);
    check_same_dtype(in[0], "input", in[1], "weight");
    check_ndim(in[1], "weight", 2);
    FS_CHECK(in[0].dim() >= 1 && in[0].shape().back() == in[1].size(1), kInvalidArgument, "input ",
             in[0].describe(), " does not match weight ", in[1].describe(), " (in_features ",
             in[1].size(1), ")");
    if (in.size() > 2 && in[2].defined()) {
      check_same_dtype(in[0], "input", in[2], "bias");
      check_shape(in[2], "bias", {in[1].size(0)});
    }
    Shape out = in[0].shape();
    out.back() = in[1].size(0);
    return std::vector<OutputSpec>{{out, in[0].dtype()}};
  };
  linear.reference = [](KernelArgs& args) {
    const Tensor &x = args.inputs[0], &w = args.inputs[1];
    int64_t k = w.size(1), n = w.size(0), rows = n ? args.outputs[0].numel() / n : 0;
    auto xv = ref::load(x), wv = ref::load(w);
    bool has_b = args.inputs.size() > 2 && args.inputs[2].defined();
    auto bv = has_b ? ref::load(args.inputs[2]) : std::vector<double>();
    std::vector<double> y(static_cast<size_t>(rows * n));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < n; ++j) {
        double acc = has_b ? bv[j] : 0.0;
        for (int64_t l = 0; l < k; ++l) acc += xv[r * k + l] * wv[j * k + l];
        y[r * n + j] = acc;
      }
    ref::store(args.outputs[0], y);
  };
  registry.add_schema(std::move(linear));

  OpSchema matmul = la_schema("matmul", {"input", "other"}, "",
                              "torch.matmul: vectors, matrices and broadcast batches");
  matmul.infer = [](const std::vector<Tensor>& in, const Attrs&) {
    check_dtype_in(in[0], "input", kFloatTypes);
    check_same_dtype(in[0], "input", in[1], "other");
    return std::vector<OutputSpec>{{matmul_shapes(in[0], in[1]).out, in[0].dtype()}};
  };
  matmul.reference = [](KernelArgs& args) {
    auto s = matmul_shapes(args.inputs[0], args.inputs[1]);
    ref::BroadcastIndex ia(s.a_batch, s.batch), ib(s.b_batch, s.batch);
    ref::store(args.outputs[0], batched_mm(ref::load(args.inputs[0]), ref::load(args.inputs[1]),
                                           shape_numel(s.batch), s.m, s.k, s.n, ia, ib));
  };
  registry.add_schema(std::move(matmul));

  OpSchema l8 = la_schema("linear_int8", {"input", "weight", "scale", "bias?"}, "",
                          "weight-only int8: input @ (weight * scale[:, None])^T + bias");
  l8.infer = [](const std::vector<Tensor>& in, const Attrs&) {
    check_dtype_in(in[0], "input", kFloatTypes);
    FS_CHECK(in[1].dtype() == DType::kI8, kInvalidArgument, "tensor 'weight' is ", in[1].describe(),
             "; expected i8");
    check_ndim(in[1], "weight", 2);
    check_shape(in[2], "scale", {in[1].size(0)});
    check_floating(in[2], "scale");
    FS_CHECK(in[0].dim() >= 1 && in[0].shape().back() == in[1].size(1), kInvalidArgument, "input ",
             in[0].describe(), " does not match weight ", in[1].describe());
    if (in.size() > 3 && in[3].defined()) check_shape(in[3], "bias", {in[1].size(0)});
    Shape out = in[0].shape();
    out.back() = in[1].size(0);
    return std::vector<OutputSpec>{{out, in[0].dtype()}};
  };
  l8.reference = [](KernelArgs& args) {
    const Tensor &x = args.inputs[0], &w = args.inputs[1];
    int64_t k = w.size(1), n = w.size(0), rows = n ? args.outputs[0].numel() / n : 0;
    auto xv = ref::load(x), wv = ref::load(w), sv = ref::load(args.inputs[2]);
    bool has_b = args.inputs.size() > 3 && args.inputs[3].defined();
    auto bv = has_b ? ref::load(args.inputs[3]) : std::vector<double>();
    std::vector<double> y(static_cast<size_t>(args.outputs[0].numel()), 0.0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < n; ++j) {
        double acc = 0;
        for (int64_t l = 0; l < k; ++l) acc += xv[r * k + l] * wv[j * k + l];
        y[r * n + j] = acc * sv[j] + (has_b ? bv[j] : 0.0);
      }
    ref::store(args.outputs[0], y);
  };
  registry.add_schema(std::move(l8));

  OpSchema lq =
      la_schema("linear_quantized", {"input", "weight", "bias?"}, "",
                "input @ dequantize(weight)^T + bias for GGUF q8_0 / q4_0 weights [out, in]");
  lq.infer = [](const std::vector<Tensor>& in, const Attrs&) {
    check_dtype_in(in[0], "input", kFloatTypes);
    check_quantized_weight(in[1]);
    FS_CHECK(in[0].dim() >= 1 && in[0].shape().back() == in[1].size(1), kInvalidArgument, "input ",
             in[0].describe(), " does not match weight ", in[1].describe());
    if (in.size() > 2 && in[2].defined()) check_shape(in[2], "bias", {in[1].size(0)});
    Shape out = in[0].shape();
    out.back() = in[1].size(0);
    return std::vector<OutputSpec>{{out, in[0].dtype()}};
  };
  lq.reference = [](KernelArgs& args) {
    const Tensor &x = args.inputs[0], &w = args.inputs[1];
    int64_t k = w.size(1), n = w.size(0), rows = n ? args.outputs[0].numel() / n : 0;
    auto xv = ref::load(x);
    auto wv = dequantize_values(w);
    bool has_b = args.inputs.size() > 2 && args.inputs[2].defined();
    auto bv = has_b ? ref::load(args.inputs[2]) : std::vector<double>();
    std::vector<double> y(static_cast<size_t>(args.outputs[0].numel()), 0.0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < n; ++j) {
        double acc = has_b ? bv[j] : 0.0;
        for (int64_t l = 0; l < k; ++l) acc += xv[r * k + l] * wv[j * k + l];
        y[r * n + j] = acc;
      }
    ref::store(args.outputs[0], y);
  };
  registry.add_schema(std::move(lq));

  OpSchema dq =
      la_schema("dequantize", {"input"}, "dtype=f32", "GGUF q8_0 / q4_0 blocks to floats");
  dq.dtypes = {DType::kQ8_0, DType::kQ4_0};
  dq.infer = [](const std::vector<Tensor>& in, const Attrs& attrs) {
    FS_CHECK(in[0].dtype() == DType::kQ8_0 || in[0].dtype() == DType::kQ4_0, kInvalidArgument,
             "tensor 'input' is ", in[0].describe(), "; expected q8_0 or q4_0");
    DType d = attr_dtype(attrs, DType::kF32);
    FS_CHECK(is_floating(d), kInvalidArgument, "dequantize dtype must be floating, got ",
             dtype_name(d));
    return std::vector<OutputSpec>{{in[0].shape(), d}};
  };
  dq.reference = [](KernelArgs& args) {
    ref::store(args.outputs[0], dequantize_values(args.inputs[0]));
  };
  registry.add_schema(std::move(dq));
}

}  // namespace flagstone::ops
