// cuda native linear and mm for 1 to 8 activation rows (decode): the GEMV of gemv.cu. cuBLAS
// (blas.cc) yields to it the calls where it measured faster (one row of a narrow weight) and
// keeps the rest; more than 8 rows this implementation refuses.
#include <algorithm>

#include "cuda/cuda_common.h"
#include "cuda/gemv.h"
#include "internal.h"

namespace flagstone::ops::cuda {
namespace {

// A linear or mm call as GEMV arguments (pointers filled in by the caller), or why it is not one.
struct Plan {
  GemvArgs args;
  std::string why;
};

Plan plan_for(const KernelArgs& args) {
  Plan p;
  GemvArgs& g = p.args;
  const Tensor &x = args.inputs[0], &w = args.inputs[1];
  if (args.op == "mm") {
    // b [k, n] must be the transpose of a row-major [n, k] weight, and a's rows unit-strided.
    g.m = x.size(0), g.k = x.size(1), g.n = w.size(1);
    if (g.k > 1 && w.stride(0) != 1)
      p.why = "b is not a transposed [n, k] weight (its stride along k is not 1)";
    else if (g.k > 1 && x.stride(1) != 1)
      p.why = "a has no unit stride along k";
    g.ldw = g.n > 1 ? w.stride(1) : g.k;
    g.ldx = g.m > 1 ? x.stride(0) : g.k;
    if (p.why.empty() && (g.ldw < g.k || g.ldx < g.k)) p.why = "overlapping rows";
    if (p.why.empty() && !args.outputs.empty() && !args.outputs[0].is_contiguous())
      p.why = "a strided output";
  } else {
    // linear takes dense tensors (dispatch copies strided ones), so only the shapes matter.
    g.n = w.size(0), g.k = w.size(1);
    g.m = g.k > 0 ? x.numel() / g.k
                  : (g.n > 0 && !args.outputs.empty() ? args.outputs[0].numel() / g.n : 0);
    g.ldw = g.k, g.ldx = g.k;
  }
  g.ldo = g.n;
  if (p.why.empty() && g.m > kGemvMaxRows)
    p.why = std::to_string(g.m) + " rows, more than " + std::to_string(kGemvMaxRows) +
            " (a GEMM: cuBLAS serves it)";
  return p;
}

void run_gemv(KernelArgs& args) {
  Plan p = plan_for(args);
  FS_CHECK(p.why.empty(), kUnsupported, "op '", args.op, "' on ", args.device.spec(),
           ": the native GEMV does not serve this call: ", p.why);
  GemvArgs& g = p.args;
  Tensor& out = args.outputs[0];
  Tensor bias = args.op == "linear" ? optional_input(args, 2) : Tensor();
  g.out = data_of(out);
  g.x = data_of(args.inputs[0]);
  g.w = data_of(args.inputs[1]);
  g.bias = data_or_null(bias);
  if (g.n == 0 || g.m == 0) return;
  check_launch(launch_gemv(out.dtype(), g, stream_for(args.device)), args.op, args.device);
}

}  // namespace

std::string gemv_refusal(const KernelArgs& args) {
  return plan_for(args).why;
}

bool gemv_preferred(const KernelArgs& args) {
  if (args.op != "linear" && args.op != "mm") return false;
  // Where the GEMV measured faster than cuBLAS on the H200 (tools/gpu/gemv.sh, session 11): one
  // row of a weight with at most 4096 rows and 8192 columns (1.0-1.3x). cuBLAS keeps wider
  // weights, where it streams at 80-100% of copy bandwidth, and 2 to 8 rows.
  Plan p = plan_for(args);
  if (!p.why.empty() || p.args.m != 1 || p.args.n > 4096 || p.args.k > 8192) return false;
  auto policy = current_policy();
  if (policy->strict) return false;
  auto order = policy->order_for(args.op);
  return std::find(order.begin(), order.end(), Provider::kNative) != order.end();
}

void register_cuda_gemv(Registry& r) {
  add_cuda(r, "linear", kHalfAndF32, run_gemv, false, gemv_refusal);
  add_cuda(r, "mm", kHalfAndF32, run_gemv, true, gemv_refusal);
}

}  // namespace flagstone::ops::cuda
