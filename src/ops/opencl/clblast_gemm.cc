// The opencl "vendor" GEMM: mm, bmm, addmm, linear and matmul through CLBlast on the runtime's
// context and queue. f16/bf16 operands are widened to f32 first (CLBlast's HGEMM accumulates
// in half precision, far from torch's f32 accumulation), and the f32 product is rounded once.
#include <clblast_c.h>

#include "flagstone/runtime/opencl_interop.h"
#include "internal.h"
#include "shape_rules.h"

namespace flagstone::ops {
namespace {

// One batched product C[p] = alpha * A[p] @ op(B[p]) over dense row-major f32 operands.
struct Gemm {
  size_t m = 0, n = 0, k = 0;
  bool b_trans = false;
  std::vector<size_t> a_off, b_off;  // element offsets per batch entry
  float alpha = 1;
};

Tensor to_f32(const Tensor& t) {
  if (t.dtype() == DType::kF32) return t;
  return call("cast", {t}, {{"dtype", "f32"}})[0];
}

void check(CLBlastStatusCode status, std::string_view op, const Device& device) {
  if (status == CLBlastSuccess) return;
  // Missing device features and unsupported sizes let dispatch try the next provider.
  throw_error(ErrorCategory::kUnsupported, "op '", op, "': CLBlast failed on ", device.spec(),
              " with status ", static_cast<int>(status));
}

Gemm plan(const KernelArgs& args) {
  GemmShape s = gemm_shape(args);
  Gemm g;
  g.m = static_cast<size_t>(s.m), g.n = static_cast<size_t>(s.n), g.k = static_cast<size_t>(s.k);
  g.b_trans = s.b_trans;
  g.a_off.assign(s.a_off.begin(), s.a_off.end()), g.b_off.assign(s.b_off.begin(), s.b_off.end());
  if (args.op == "addmm") g.alpha = static_cast<float>(args.attrs.get_double("alpha", 1));
  return g;
}

void run(KernelArgs& args) {
  std::string_view op = args.op;
  bool addmm = op == "addmm";
  Tensor a = to_f32(args.inputs[addmm ? 1 : 0]);
  Tensor b = to_f32(args.inputs[addmm ? 2 : 1]);
  Tensor out = args.outputs[0];
  Tensor c =
      out.dtype() == DType::kF32 ? out : Tensor::empty(out.shape(), DType::kF32, out.device());
  Gemm g = plan(args);
  const Device& device = out.device();
  if (c.numel() > 0) {
    cl_command_queue queue = runtime::opencl_queue(Stream::default_stream(device));
    auto mem = [](const Tensor& t) { return static_cast<cl_mem>(t.buffer().handle()); };
    auto off = [](const Tensor& t) { return static_cast<size_t>(t.offset()); };
    CLBlastTranspose tb = g.b_trans ? CLBlastTransposeYes : CLBlastTransposeNo;
    size_t lda = g.k, ldb = g.b_trans ? g.k : g.n, ldc = g.n;
    size_t batch = g.a_off.size();
    bool uniform = batch > 1;
    for (size_t p = 1; p < batch && uniform; ++p)
      uniform = g.a_off[p] - g.a_off[p - 1] == g.a_off[1] - g.a_off[0] &&
                g.b_off[p] - g.b_off[p - 1] == g.b_off[1] - g.b_off[0];
    if (g.k == 0) {
      c.fill_bytes_(0);
    } else if (uniform) {
      check(CLBlastSgemmStridedBatched(CLBlastLayoutRowMajor, CLBlastTransposeNo, tb, g.m, g.n, g.k,
                                       g.alpha, mem(a), off(a), lda, g.a_off[1] - g.a_off[0],
                                       mem(b), off(b), ldb, g.b_off[1] - g.b_off[0], 0.0f, mem(c),
                                       off(c), ldc, g.m * g.n, batch, &queue, nullptr),
            op, device);
    } else {
      for (size_t p = 0; p < batch; ++p)
        check(CLBlastSgemm(CLBlastLayoutRowMajor, CLBlastTransposeNo, tb, g.m, g.n, g.k, g.alpha,
                           mem(a), off(a) + g.a_off[p], lda, mem(b), off(b) + g.b_off[p], ldb, 0.0f,
                           mem(c), off(c) + p * g.m * g.n, ldc, &queue, nullptr),
              op, device);
    }
  }
  // Bias terms go through the dispatched add (the generated kernel on this device).
  Tensor bias;
  double beta = 1;
  if (addmm) bias = args.inputs[0], beta = args.attrs.get_double("beta", 1);
  if (op == "linear" && args.inputs.size() > 2) bias = args.inputs[2];
  if (bias.defined() && beta != 0) {
    std::vector<Tensor> outs{c};
    call_out("add", {c, bias}, {{"alpha", beta}}, outs);
  }
  if (c.dtype() != out.dtype()) {
    std::vector<Tensor> outs{out};
    call_out("cast", {c}, {{"dtype", std::string(dtype_name(out.dtype()))}}, outs);
  }
}

}  // namespace

void register_opencl_gemm(Registry& r) {
  for (const char* op : {"mm", "bmm", "addmm", "linear", "matmul"}) {
    Implementation impl;
    impl.op = op;
    impl.backend = "opencl";
    impl.provider = Provider::kVendor;
    impl.dtypes = {DType::kF32, DType::kF16, DType::kBF16};
    impl.fn = run;
    impl.strided = false;  // CLBlast takes dense row-major operands
    impl.name = std::string("opencl/vendor/") + op + " (CLBlast)";
    r.add_implementation(std::move(impl));
  }
}

}  // namespace flagstone::ops
