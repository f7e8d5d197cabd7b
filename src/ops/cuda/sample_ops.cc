// cuda native selection ops on the last dim: argmax/argmin, topk, the token sampler (greedy, or
// temperature with top-k up to 1024, top-p, min-p: sampler.cu) and seeded multinomial.
#include "cuda/cuda_common.h"
#include "internal.h"

namespace flagstone::ops::cuda {
namespace {

bool on_last_dim(const Tensor& x, const Attrs& attrs) {
  if (!attrs.has("dim")) return true;  // over all elements of a contiguous tensor
  int64_t dim = attrs.get_int("dim", -1);
  return x.dim() > 0 && (dim == -1 || dim == x.dim() - 1);
}

SelectArgs rows_of(const Tensor& x, const Attrs& attrs) {
  SelectArgs a;
  a.x = data_of(x);
  a.n = attrs.has("dim") && x.dim() > 0 ? x.shape().back() : x.numel();
  a.rows = a.n == 0 ? 0 : x.numel() / a.n;
  return a;
}

std::string last_dim_supports(const KernelArgs& args) {
  if (!on_last_dim(args.inputs[0], args.attrs))
    return "the native kernel selects along the last dim";
  if (args.inputs[0].numel() >= (int64_t{1} << 31) * 1024) return "too many rows";
  return "";
}

void multinomial(KernelArgs& args) {
  const Tensor& x = args.inputs[0];
  MultinomialArgs a;
  a.probs = data_of(x);
  a.n = x.shape().back();
  a.rows = x.dim() == 2 ? x.size(0) : 1;
  a.samples = args.attrs.int_at("num_samples");
  a.replacement = args.attrs.get_bool("replacement", false);
  a.seed = static_cast<uint64_t>(args.attrs.get_int("seed", 0));
  a.offset = static_cast<uint64_t>(args.attrs.get_int("offset", 0));
  a.out = static_cast<int64_t*>(data_of(args.outputs[0]));
  Tensor status = Tensor::empty({1}, DType::kI64, args.device);
  a.status = static_cast<unsigned long long*>(data_of(status));
  cudaStream_t stream = stream_for(args.device);
  check_launch(launch_multinomial(x.dtype(), a, stream), args.op, args.device);
  // The reference raises on invalid weights; the device reports the first bad row, which costs
  // one wait for the stream (sampling ends a step anyway).
  unsigned long long st = 0;
  check_launch(cudaMemcpyAsync(&st, a.status, sizeof st, cudaMemcpyDeviceToHost, stream), args.op,
               args.device);
  check_launch(cudaStreamSynchronize(stream), args.op, args.device);
  if (st == ~0ull) return;
  unsigned long long row = st / 4, kind = st % 4;
  FS_CHECK(kind != 0, kInvalidArgument, "op 'multinomial': row ", row,
           " has a negative, infinite or NaN weight");
  FS_CHECK(kind != 1, kInvalidArgument, "op 'multinomial': row ", row, " sums to zero");
  FS_CHECK(false, kInvalidArgument, "op 'multinomial': row ", row, " has fewer than ", a.samples,
           " nonzero weights to draw without replacement");
}

}  // namespace

void register_cuda_sample(Registry& r) {
  add_cuda(r, "multinomial", kHalfAndF32, multinomial, false, [](const KernelArgs& args) {
    const Tensor& x = args.inputs[0];
    if (x.dim() == 2 && x.size(0) >= (int64_t{1} << 31)) return std::string("2^31 rows or more");
    if (!args.attrs.get_bool("replacement", false) && x.shape().back() > kMaxMultinomialN)
      return std::string("more than 2^18 categories without replacement");
    return std::string();
  });
  for (const char* op : {"argmax", "argmin"}) {
    bool largest = std::string_view(op) == "argmax";
    add_cuda(
        r, op, kHalfAndF32,
        [largest](KernelArgs& args) {
          const Tensor& x = args.inputs[0];
          SelectArgs a = rows_of(x, args.attrs);
          a.largest = largest;
          a.indices = static_cast<int64_t*>(data_of(args.outputs[0]));
          check_launch(launch_select(x.dtype(), a, stream_for(args.device)), args.op, args.device);
        },
        false, last_dim_supports);
  }
  add_cuda(
      r, "topk", kHalfAndF32,
      [](KernelArgs& args) {
        const Tensor& x = args.inputs[0];
        SelectArgs a = rows_of(x, {{"dim", -1}});
        a.k = args.attrs.int_at("k");
        a.largest = args.attrs.get_bool("largest", true);
        a.values = data_of(args.outputs[0]);
        a.indices = static_cast<int64_t*>(data_of(args.outputs[1]));
        check_launch(launch_select(x.dtype(), a, stream_for(args.device)), args.op, args.device);
      },
      false,
      [](const KernelArgs& args) {
        const Tensor& x = args.inputs[0];
        int64_t dim = args.attrs.get_int("dim", -1);
        if (x.dim() == 0 || (dim != -1 && dim != x.dim() - 1))
          return std::string("the native topk works along the last dim");
        if (args.attrs.get_int("k", 1) > 256) return std::string("k above 256");
        return std::string();
      });
  add_cuda(
      r, "sample", kHalfAndF32,
      [](KernelArgs& args) {
        const Tensor& x = args.inputs[0];
        auto* out = static_cast<int64_t*>(data_of(args.outputs[0]));
        cudaStream_t stream = stream_for(args.device);
        if (args.attrs.get_double("temperature", 1.0) == 0) {
          SelectArgs a = rows_of(x, {{"dim", -1}});
          a.indices = out;
          check_launch(launch_select(x.dtype(), a, stream), args.op, args.device);
          return;
        }
        SampleArgs a;
        a.logits = data_of(x);
        a.rows = x.size(0), a.n = x.size(1);
        a.temperature = args.attrs.get_double("temperature", 1.0);
        a.top_k = args.attrs.get_int("top_k", 0);
        a.top_p = args.attrs.get_double("top_p", 1.0);
        a.min_p = args.attrs.get_double("min_p", 0.0);
        a.seed = static_cast<uint64_t>(args.attrs.get_int("seed", 0));
        a.offset = static_cast<uint64_t>(args.attrs.get_int("offset", 0));
        a.out = out;
        check_launch(launch_sample(x.dtype(), a, stream), args.op, args.device);
      },
      false,
      [](const KernelArgs& args) {
        const Tensor& x = args.inputs[0];
        double temperature = args.attrs.get_double("temperature", 1.0);
        if (temperature == 0) return std::string();
        if (!(temperature > 0)) return std::string("a negative temperature");
        if (x.dim() != 2 || x.size(1) >= (int64_t{1} << 31) || x.size(0) >= (int64_t{1} << 31))
          return std::string("more than 2^31 rows or columns");
        int64_t top_k = args.attrs.get_int("top_k", 0);
        bool top_k_on = top_k > 0 && top_k < x.size(1);
        if (top_k_on && top_k > 1024) return std::string("top_k above 1024");
        return std::string();
      });
}

}  // namespace flagstone::ops::cuda
