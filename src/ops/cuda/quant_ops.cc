// cuda native weight-only quantized linear (linear_int8; linear_quantized for GGUF q8_0 and
// q4_0): the in-register dequantizing GEMV of quant.cu for decode-sized batches, and for larger
// ones a dequantized f32 copy of the weight handed to the dispatched (cuBLAS) linear.
#include "cuda/cuda_common.h"
#include "flagstone/ops/ops.h"
#include "internal.h"

namespace flagstone::ops::cuda {
namespace {

// Batches up to this many rows stream the quantized weight; larger ones are compute-bound and
// amortize a dequantized copy.
constexpr int64_t kGemvRows = 16;

void quant_linear(KernelArgs& args, bool int8) {
  const Tensor &x = args.inputs[0], &w = args.inputs[1];
  Tensor scale = int8 ? args.inputs[2] : Tensor();
  Tensor bias = optional_input(args, int8 ? 3 : 2);
  Tensor& out = args.outputs[0];
  QuantArgs a;
  a.n = w.size(0), a.k = w.size(1), a.m = a.n ? out.numel() / a.n : 0;
  a.format = int8 ? QuantFormat::kInt8
                  : (w.dtype() == DType::kQ8_0 ? QuantFormat::kQ8_0 : QuantFormat::kQ4_0);
  a.row_bytes = static_cast<int64_t>(dtype_bytes(w.dtype(), a.k));
  a.weight = data_of(w);
  a.x = data_of(x);
  a.out = data_of(out);
  if (scale.defined()) a.scale = data_of(scale), a.scale_dtype = scale.dtype();
  cudaStream_t stream = stream_for(args.device);
  if (a.m <= kGemvRows) {
    if (bias.defined()) a.bias = data_of(bias), a.bias_dtype = bias.dtype();
    check_launch(launch_quant_gemv(x.dtype(), a, stream), args.op, args.device);
    return;
  }
  // Dequantized to f32 and multiplied in f32: rounding the weights to f16/bf16 first would add
  // an error the reference does not have.
  Tensor dense = Tensor::empty({a.n, a.k}, DType::kF32, args.device);
  check_launch(launch_dequantize(DType::kF32, data_of(dense), a, stream), args.op, args.device);
  auto f32 = [](const Tensor& t) { return t.dtype() == DType::kF32 ? t : cast(t, DType::kF32); };
  Tensor y = linear(f32(x), dense, bias.defined() ? f32(bias) : Tensor());
  out.copy_(out.dtype() == DType::kF32 ? y : cast(y, out.dtype()));
}

std::string quant_supports(const KernelArgs& args) {
  const Tensor& w = args.inputs[1];
  if (!w.is_contiguous()) return "a strided quantized weight";
  return "";
}

}  // namespace

void register_cuda_quant(Registry& r) {
  add_cuda(
      r, "linear_int8", kHalfAndF32, [](KernelArgs& args) { quant_linear(args, true); }, false,
      quant_supports);
  add_cuda(
      r, "linear_quantized", kHalfAndF32, [](KernelArgs& args) { quant_linear(args, false); },
      false, quant_supports);
}

}  // namespace flagstone::ops::cuda
