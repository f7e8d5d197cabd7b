// cuda native elementwise ops: add and mul with broadcasting over any strides, f32/f16/bf16
// casts, contiguous copies, and silu_and_mul / gelu_and_mul. Calls the launchers of
// elementwise.cu on the device's default stream.
#include <algorithm>
#include <string>

#include "cuda/cuda_common.h"
#include "internal.h"

namespace flagstone::ops::cuda {
namespace {

bool is_half_or_f32(DType d) {
  return d == DType::kF32 || d == DType::kF16 || d == DType::kBF16;
}

std::string binary_supports(const KernelArgs& args) {
  DType d = args.inputs[0].dtype();
  if (!is_half_or_f32(d) || args.inputs[1].dtype() != d ||
      (!args.outputs.empty() && args.outputs[0].dtype() != d))
    return "the native kernel needs one float dtype for both inputs and the output";
  return "";
}

// Elements per repetition when `row` broadcast to `shape` is a contiguous block repeated over
// the leading dims (a bias or a scale over the last dims), else 0.
int64_t row_period(const Tensor& row, const Shape& shape) {
  if (!row.is_contiguous() || row.numel() == 0) return 0;
  Shape trailing = row.shape();
  while (!trailing.empty() && trailing.front() == 1) trailing.erase(trailing.begin());
  if (trailing.size() > shape.size() ||
      !std::equal(trailing.begin(), trailing.end(),
                  shape.end() - static_cast<int64_t>(trailing.size())))
    return 0;
  return row.numel();
}

void binary(KernelArgs& args, BinaryKind kind) {
  Tensor a = args.inputs[0], b = args.inputs[1];
  Tensor& out = args.outputs[0];
  float alpha = static_cast<float>(args.attrs.get_double("alpha", 1.0));
  cudaStream_t stream = stream_for(args.device);
  auto full = [&](const Tensor& t) { return t.is_contiguous() && t.shape() == out.shape(); };
  // a * row is row * a: put the repeated operand second.
  if (kind == BinaryKind::kMul && !full(a) && full(b)) std::swap(a, b);
  cudaError_t status;
  int64_t period = 0;
  if (out.is_contiguous() && full(a) && (full(b) || (period = row_period(b, out.shape())) > 0)) {
    status = launch_binary(kind, out.dtype(), data_of(out), data_of(a), data_of(b), alpha,
                           out.numel(), nullptr, full(b) ? 0 : period, stream);
  } else {
    NdLayout layout =
        collapse_layout(out.shape(), {out.strides(), broadcast_strides_of(a, out.shape()),
                                      broadcast_strides_of(b, out.shape())});
    status = launch_binary(kind, out.dtype(), data_of(out), data_of(a), data_of(b), alpha,
                           out.numel(), &layout, 0, stream);
  }
  check_launch(status, args.op, args.device);
}

void act_and_mul(KernelArgs& args, ActKind act) {
  const Tensor& x = args.inputs[0];
  Tensor& out = args.outputs[0];
  int64_t d = out.dim() == 0 ? 1 : out.shape().back();
  int64_t rows = d == 0 ? 0 : out.numel() / d;
  check_launch(launch_act_and_mul(act, x.dtype(), data_of(out), data_of(x), rows, d,
                                  stream_for(args.device)),
               args.op, args.device);
}

}  // namespace

void register_cuda_elementwise(Registry& r) {
  add_cuda(
      r, "add", kHalfAndF32, [](KernelArgs& args) { binary(args, BinaryKind::kAdd); }, true,
      binary_supports);
  add_cuda(
      r, "mul", kHalfAndF32, [](KernelArgs& args) { binary(args, BinaryKind::kMul); }, true,
      binary_supports);
  add_cuda(
      r, "cast", kHalfAndF32,
      [](KernelArgs& args) {
        const Tensor& x = args.inputs[0];
        Tensor& out = args.outputs[0];
        check_launch(launch_cast(x.dtype(), out.dtype(), data_of(out), data_of(x), x.numel(),
                                 stream_for(args.device)),
                     args.op, args.device);
      },
      false,
      [](const KernelArgs& args) {
        return args.outputs.empty() || is_half_or_f32(args.outputs[0].dtype())
                   ? std::string()
                   : std::string("the native cast converts between f32, f16 and bf16 only");
      });
  // A strided copy on the device (the runtime's copy kernel), so views never visit the host.
  add_cuda(
      r, "contiguous",
      {DType::kF32, DType::kF16, DType::kBF16, DType::kF64, DType::kI64, DType::kI32, DType::kI16,
       DType::kI8, DType::kU8, DType::kBool},
      [](KernelArgs& args) {
        stream_for(args.device);
        args.outputs[0].copy_(args.inputs[0]);
      },
      true);
  add_cuda(r, "silu_and_mul", kHalfAndF32,
           [](KernelArgs& args) { act_and_mul(args, ActKind::kSilu); });
  add_cuda(r, "gelu_and_mul", kHalfAndF32, [](KernelArgs& args) {
    bool tanh_approx = args.attrs.get_string("approximate", "none") == "tanh";
    act_and_mul(args, tanh_approx ? ActKind::kGeluTanh : ActKind::kGeluErf);
  });
}

}  // namespace flagstone::ops::cuda
