// cuda native row ops and large-model ops: softmax, log_softmax, rms_norm, add_rms_norm,
// layer_norm (norm.cu), rotary embedding, embedding and cross_entropy (llm.cu). Dispatch hands
// these contiguous tensors; weights and tables are read as they are.
#include <cmath>
#include <string>

#include "cuda/cuda_common.h"
#include "internal.h"

namespace flagstone::ops::cuda {
namespace {

int64_t last_dim(const Tensor& t) {
  return t.dim() == 0 ? 1 : t.shape().back();
}
int64_t rows_of(const Tensor& t) {
  int64_t n = last_dim(t);
  return n == 0 ? 0 : t.numel() / n;
}

std::string last_dim_only(const KernelArgs& args) {
  const Tensor& x = args.inputs[0];
  int64_t dim = args.attrs.get_int("dim", -1);
  bool last = x.dim() == 0 || dim == -1 || dim == x.dim() - 1;
  return last ? std::string() : std::string("the native softmax reduces the last dim only");
}

std::string rows_fit_grid(const KernelArgs& args) {
  return rows_of(args.inputs[0]) < (int64_t{1} << 31) ? std::string()
                                                      : std::string("more than 2^31 rows");
}

void rotary(KernelArgs& args) {
  const Tensor &x = args.inputs[0], &pos = args.inputs[1], &cos = args.inputs[2],
               &sin = args.inputs[3];
  RotaryArgs a;
  a.out = data_of(args.outputs[0]);
  a.x = data_of(x);
  a.positions = data_of(pos);
  a.positions_i64 = pos.dtype() == DType::kI64;
  a.cos = data_of(cos);
  a.sin = data_of(sin);
  a.table_dtype = cos.dtype();
  a.tokens = pos.numel();
  a.heads = x.size(x.dim() - 2);
  a.head_dim = x.shape().back();
  a.half = cos.size(1);
  a.max_positions = cos.size(0);
  a.neox = args.attrs.get_string("style", "neox") == "neox";
  check_launch(launch_rotary(x.dtype(), a, stream_for(args.device)), args.op, args.device);
}

void cross_entropy(KernelArgs& args) {
  const Tensor &x = args.inputs[0], &target = args.inputs[1];
  Tensor& out = args.outputs[0];
  CrossEntropyArgs a;
  a.rows = x.dim() == 2 ? x.size(0) : 1;
  a.classes = x.shape().back();
  a.logits = data_of(x);
  a.target = data_of(target);
  a.target_i64 = target.dtype() == DType::kI64;
  a.ignore_index = args.attrs.get_int("ignore_index", -100);
  a.label_smoothing = static_cast<float>(args.attrs.get_double("label_smoothing", 0));
  std::string red = args.attrs.get_string("reduction", "mean");
  a.reduction = red == "none" ? 0 : red == "mean" ? 1 : 2;
  a.out = data_of(out);
  Tensor scratch;
  if (a.reduction != 0) {
    // Per-row losses and counts for the second pass; from the caching allocator (no cudaMalloc
    // once warm), kept alive until the stream has used it by the allocator's stream ordering.
    scratch = Tensor::empty({2 * std::max<int64_t>(a.rows, 1)}, DType::kF32, args.device);
    a.losses = static_cast<float*>(data_of(scratch));
  }
  check_launch(launch_cross_entropy(x.dtype(), a, stream_for(args.device)), args.op, args.device);
}

}  // namespace

void register_cuda_norm(Registry& r) {
  for (const char* op : {"softmax", "log_softmax"}) {
    bool log = std::string_view(op) == "log_softmax";
    add_cuda(
        r, op, kHalfAndF32,
        [log](KernelArgs& args) {
          const Tensor& x = args.inputs[0];
          check_launch(launch_softmax(x.dtype(), data_of(args.outputs[0]), data_of(x), rows_of(x),
                                      last_dim(x), log, stream_for(args.device)),
                       args.op, args.device);
        },
        false,
        [](const KernelArgs& args) {
          std::string why = last_dim_only(args);
          return why.empty() ? rows_fit_grid(args) : why;
        });
  }
  add_cuda(
      r, "rms_norm", kHalfAndF32,
      [](KernelArgs& args) {
        const Tensor& x = args.inputs[0];
        Tensor w = optional_input(args, 1);
        check_launch(launch_rms_norm(x.dtype(), data_of(args.outputs[0]), nullptr, data_of(x),
                                     nullptr, data_or_null(w), rows_of(x), last_dim(x),
                                     static_cast<float>(args.attrs.get_double("eps", 1e-6)),
                                     stream_for(args.device)),
                     args.op, args.device);
      },
      false, rows_fit_grid);
  add_cuda(
      r, "add_rms_norm", kHalfAndF32,
      [](KernelArgs& args) {
        const Tensor& x = args.inputs[0];
        check_launch(launch_rms_norm(x.dtype(), data_of(args.outputs[0]), data_of(args.outputs[1]),
                                     data_of(x), data_of(args.inputs[1]), data_of(args.inputs[2]),
                                     rows_of(x), last_dim(x),
                                     static_cast<float>(args.attrs.get_double("eps", 1e-6)),
                                     stream_for(args.device)),
                     args.op, args.device);
      },
      false, rows_fit_grid);
  add_cuda(
      r, "layer_norm", kHalfAndF32,
      [](KernelArgs& args) {
        const Tensor& x = args.inputs[0];
        check_launch(
            launch_layer_norm(x.dtype(), data_of(args.outputs[0]), data_of(x),
                              data_or_null(optional_input(args, 1)),
                              data_or_null(optional_input(args, 2)), rows_of(x), last_dim(x),
                              static_cast<float>(args.attrs.get_double("eps", 1e-5)),
                              stream_for(args.device)),
            args.op, args.device);
      },
      false,
      [](const KernelArgs& args) {
        if (args.attrs.get_int("normalized_ndim", 1) != 1)
          return std::string("the native layer_norm normalizes the last dim only");
        return rows_fit_grid(args);
      });
  add_cuda(r, "rotary_embedding", kHalfAndF32, rotary, false, [](const KernelArgs& args) {
    return args.inputs[2].dtype() == DType::kF64 ? std::string("f64 tables run in the reference")
                                                 : std::string();
  });
  add_cuda(
      r, "embedding",
      {DType::kF32, DType::kF16, DType::kBF16, DType::kF64, DType::kI64, DType::kI32, DType::kI16,
       DType::kI8, DType::kU8, DType::kBool},
      [](KernelArgs& args) {
        const Tensor &idx = args.inputs[0], &w = args.inputs[1];
        check_launch(launch_embedding(data_of(args.outputs[0]), data_of(w), data_of(idx),
                                      idx.dtype() == DType::kI64, idx.numel(), w.size(0),
                                      static_cast<int64_t>(dtype_size(w.dtype())) * w.size(1),
                                      stream_for(args.device)),
                     args.op, args.device);
      },
      false,
      [](const KernelArgs& args) {
        return args.inputs[0].numel() < (int64_t{1} << 31) ? std::string()
                                                           : std::string("2^31 or more indices");
      });
  add_cuda(r, "cross_entropy", kHalfAndF32, cross_entropy, false, [](const KernelArgs& args) {
    return args.inputs[0].dim() == 2 && args.inputs[0].size(0) >= (int64_t{1} << 31)
               ? std::string("2^31 or more rows")
               : std::string();
  });
}

}  // namespace flagstone::ops::cuda
