// The typed free functions of flagstone/ops/ops.h for large-model, attention, sampling, linear
// algebra, data movement and factory ops; split/chunk are views and need no kernel.
#include "flagstone/ops/ops.h"

namespace flagstone::ops {
namespace {

Tensor one(std::string_view op, const std::vector<Tensor>& inputs, const Attrs& attrs = {}) {
  return call(op, inputs, attrs).at(0);
}

TensorPair two(std::string_view op, const std::vector<Tensor>& inputs, const Attrs& attrs) {
  auto out = call(op, inputs, attrs);
  return {out.at(0), out.at(1)};
}

Tensor& out_one(std::string_view op, Tensor& out, const std::vector<Tensor>& inputs,
                const Attrs& attrs) {
  std::vector<Tensor> outs{out};
  call_out(op, inputs, attrs, outs);
  return out;
}

AttrValue seed_value(uint64_t v) {
  return static_cast<int64_t>(v);
}
std::string name_of(DType d) {
  return std::string(dtype_name(d));
}
Attrs factory_attrs(DType dtype, const Device& device) {
  return Attrs{{"dtype", name_of(dtype)}, {"device", device.spec()}};
}

}  // namespace

Tensor embedding(const Tensor& indices, const Tensor& weight) {
  return one("embedding", {indices, weight});
}

TensorPair rope_cache(int64_t max_positions, int64_t rotary_dim, double base, const RopeScaling& s,
                      DType dtype, const Device& device) {
  Attrs attrs = factory_attrs(dtype, device);
  attrs.set("max_positions", max_positions)
      .set("rotary_dim", rotary_dim)
      .set("base", base)
      .set("scaling", s.type)
      .set("factor", s.factor)
      .set("original_max_positions", s.original_max_positions)
      .set("low_freq_factor", s.low_freq_factor)
      .set("high_freq_factor", s.high_freq_factor);
  return two("rope_cache", {}, attrs);
}

Tensor rotary_embedding(const Tensor& x, const Tensor& positions, const Tensor& cos,
                        const Tensor& sin, const std::string& style) {
  return one("rotary_embedding", {x, positions, cos, sin}, {{"style", style}});
}
Tensor silu_and_mul(const Tensor& x) {
  return one("silu_and_mul", {x});
}
Tensor gelu_and_mul(const Tensor& x, const std::string& a) {
  return one("gelu_and_mul", {x}, {{"approximate", a}});
}
TensorPair add_rms_norm(const Tensor& x, const Tensor& r, const Tensor& w, double eps) {
  return two("add_rms_norm", {x, r, w}, {{"eps", eps}});
}
Tensor cross_entropy(const Tensor& logits, const Tensor& target, const std::string& reduction,
                     int64_t ignore_index, double label_smoothing) {
  return one("cross_entropy", {logits, target},
             {{"reduction", reduction},
              {"ignore_index", ignore_index},
              {"label_smoothing", label_smoothing}});
}
Tensor one_hot(const Tensor& indices, int64_t n) {
  return one("one_hot", {indices}, {{"num_classes", n}});
}

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& mask, const AttentionOptions& o) {
  Attrs attrs{{"causal", o.causal},
              {"causal_alignment", o.bottom_right ? "bottom_right" : "top_left"}};
  if (o.scale) attrs.set("scale", *o.scale);
  return one("scaled_dot_product_attention", {q, k, v, mask}, attrs);
}
Tensor paged_attention(const Tensor& q, const Tensor& kc, const Tensor& vc, const Tensor& bt,
                       const Tensor& sl, std::optional<double> scale) {
  Attrs attrs;
  if (scale) attrs.set("scale", *scale);
  return one("paged_attention", {q, kc, vc, bt, sl}, attrs);
}

TensorPair topk(const Tensor& x, int64_t k, int64_t dim, bool largest) {
  return two("topk", {x}, {{"k", k}, {"dim", dim}, {"largest", largest}});
}
TensorPair sort(const Tensor& x, int64_t dim, bool descending) {
  return two("sort", {x}, {{"dim", dim}, {"descending", descending}});
}
Tensor argsort(const Tensor& x, int64_t dim, bool descending) {
  return one("argsort", {x}, {{"dim", dim}, {"descending", descending}});
}
Tensor sample(const Tensor& logits, const SamplingParams& p) {
  return one("sample", {logits},
             {{"temperature", p.temperature},
              {"top_k", p.top_k},
              {"top_p", p.top_p},
              {"min_p", p.min_p},
              {"seed", seed_value(p.seed)},
              {"offset", seed_value(p.offset)}});
}
Tensor multinomial(const Tensor& probs, int64_t n, bool replacement, uint64_t seed,
                   uint64_t offset) {
  return one("multinomial", {probs},
             {{"num_samples", n},
              {"replacement", replacement},
              {"seed", seed_value(seed)},
              {"offset", seed_value(offset)}});
}

Tensor mm(const Tensor& a, const Tensor& b) {
  return one("mm", {a, b});
}
Tensor bmm(const Tensor& a, const Tensor& b) {
  return one("bmm", {a, b});
}
Tensor addmm(const Tensor& bias, const Tensor& a, const Tensor& b, double beta, double alpha) {
  return one("addmm", {bias, a, b}, {{"beta", beta}, {"alpha", alpha}});
}
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  return one("linear", {x, w, b});
}
Tensor matmul(const Tensor& a, const Tensor& b) {
  return one("matmul", {a, b});
}
Tensor linear_int8(const Tensor& x, const Tensor& w, const Tensor& s, const Tensor& b) {
  return one("linear_int8", {x, w, s, b});
}
Tensor linear_quantized(const Tensor& x, const Tensor& w, const Tensor& b) {
  return one("linear_quantized", {x, w, b});
}
Tensor dequantize(const Tensor& x, DType dtype) {
  return one("dequantize", {x}, {{"dtype", name_of(dtype)}});
}
Tensor& mm_out(Tensor& out, const Tensor& a, const Tensor& b) {
  return out_one("mm", out, {a, b}, {});
}
Tensor& linear_out(Tensor& out, const Tensor& x, const Tensor& w, const Tensor& b) {
  return out_one("linear", out, {x, w, b}, {});
}

Tensor contiguous(const Tensor& x) {
  return one("contiguous", {x});
}
Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  return one("cat", tensors, {{"dim", dim}});
}
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  return one("stack", tensors, {{"dim", dim}});
}

std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim) {
  FS_CHECK(split_size > 0, kInvalidArgument, "split size ", split_size, " must be positive");
  FS_CHECK(x.dim() > 0, kInvalidArgument, "cannot split the 0-d tensor ", x.describe());
  int d = static_cast<int>(dim < 0 ? dim + x.dim() : dim);
  FS_CHECK(d >= 0 && d < x.dim(), kInvalidArgument, "split dim ", dim, " is out of range for ",
           x.describe());
  std::vector<Tensor> parts;
  for (int64_t start = 0; start < x.size(d) || (start == 0 && x.size(d) == 0);
       start += split_size) {
    parts.push_back(x.narrow(d, start, std::min(split_size, x.size(d) - start)));
    if (x.size(d) == 0) break;
  }
  return parts;
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) {
  FS_CHECK(x.dim() > 0, kInvalidArgument, "cannot split the 0-d tensor ", x.describe());
  int d = static_cast<int>(dim < 0 ? dim + x.dim() : dim);
  FS_CHECK(d >= 0 && d < x.dim(), kInvalidArgument, "split dim ", dim, " is out of range for ",
           x.describe());
  int64_t total = 0;
  for (int64_t s : sizes) {
    FS_CHECK(s >= 0, kInvalidArgument, "split sizes must be non-negative");
    total += s;
  }
  FS_CHECK(total == x.size(d), kInvalidArgument, "split sizes sum to ", total, " but dim ", d,
           " of ", x.describe(), " has ", x.size(d));
  std::vector<Tensor> parts;
  int64_t start = 0;
  for (int64_t s : sizes) {
    parts.push_back(x.narrow(d, start, s));
    start += s;
  }
  return parts;
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  FS_CHECK(chunks > 0, kInvalidArgument, "chunk count ", chunks, " must be positive");
  FS_CHECK(x.dim() > 0, kInvalidArgument, "cannot chunk the 0-d tensor ", x.describe());
  int d = static_cast<int>(dim < 0 ? dim + x.dim() : dim);
  FS_CHECK(d >= 0 && d < x.dim(), kInvalidArgument, "chunk dim ", dim, " is out of range for ",
           x.describe());
  int64_t size = (x.size(d) + chunks - 1) / chunks;
  return split(x, std::max<int64_t>(size, 1), d);
}

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  return one("index_select", {x, index}, {{"dim", dim}});
}
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  return one("gather", {x, index}, {{"dim", dim}});
}
Tensor scatter(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  return one("scatter", {x, index, src}, {{"dim", dim}});
}
Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  return one("scatter_add", {x, index, src}, {{"dim", dim}});
}
Tensor index_put(const Tensor& x, const Tensor& index, const Tensor& values, bool acc) {
  return one("index_put", {x, index, values}, {{"accumulate", acc}});
}
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  return one("masked_fill", {x, mask}, {{"value", value}});
}
Tensor masked_select(const Tensor& x, const Tensor& mask) {
  return one("masked_select", {x, mask});
}
Tensor nonzero(const Tensor& x) {
  return one("nonzero", {x});
}
Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, const std::string& mode,
           double value) {
  return one("pad", {x}, {{"pads", pads}, {"mode", mode}, {"value", value}});
}
Tensor repeat(const Tensor& x, const std::vector<int64_t>& r) {
  return one("repeat", {x}, {{"repeats", r}});
}
Tensor repeat_interleave(const Tensor& x, int64_t repeats, std::optional<int64_t> dim) {
  Attrs attrs{{"repeats", repeats}};
  if (dim) attrs.set("dim", *dim);
  return one("repeat_interleave", {x}, attrs);
}
Tensor tile(const Tensor& x, const std::vector<int64_t>& reps) {
  return one("tile", {x}, {{"reps", reps}});
}
Tensor flip(const Tensor& x, const std::vector<int64_t>& dims) {
  return one("flip", {x}, {{"dims", dims}});
}
Tensor roll(const Tensor& x, const std::vector<int64_t>& shifts, const std::vector<int64_t>& dims) {
  return one("roll", {x}, {{"shifts", shifts}, {"dims", dims}});
}
Tensor tril(const Tensor& x, int64_t k) {
  return one("tril", {x}, {{"diagonal", k}});
}
Tensor triu(const Tensor& x, int64_t k) {
  return one("triu", {x}, {{"diagonal", k}});
}

Tensor arange(double start, double end, double step, DType dtype, const Device& device) {
  return one("arange", {},
             factory_attrs(dtype, device).set("start", start).set("end", end).set("step", step));
}
Tensor arange(int64_t end, const Device& device) {
  return one("arange", {}, factory_attrs(DType::kI64, device).set("end", end));
}
Tensor linspace(double start, double end, int64_t steps, DType dtype, const Device& device) {
  return one("linspace", {},
             factory_attrs(dtype, device).set("start", start).set("end", end).set("steps", steps));
}
Tensor full(const Shape& shape, double value, DType dtype, const Device& device) {
  return one("full", {}, factory_attrs(dtype, device).set("shape", shape).set("value", value));
}
Tensor zeros(const Shape& shape, DType dtype, const Device& device) {
  return one("zeros", {}, factory_attrs(dtype, device).set("shape", shape));
}
Tensor ones(const Shape& shape, DType dtype, const Device& device) {
  return one("ones", {}, factory_attrs(dtype, device).set("shape", shape));
}
Tensor eye(int64_t n, std::optional<int64_t> m, DType dtype, const Device& device) {
  return one("eye", {}, factory_attrs(dtype, device).set("n", n).set("m", m.value_or(n)));
}
Tensor rand(const Shape& shape, uint64_t seed, uint64_t offset, DType dtype, const Device& device) {
  return one("rand", {},
             factory_attrs(dtype, device)
                 .set("shape", shape)
                 .set("seed", seed_value(seed))
                 .set("offset", seed_value(offset)));
}
Tensor randn(const Shape& shape, uint64_t seed, uint64_t offset, DType dtype,
             const Device& device) {
  return one("randn", {},
             factory_attrs(dtype, device)
                 .set("shape", shape)
                 .set("seed", seed_value(seed))
                 .set("offset", seed_value(offset)));
}
Tensor randint(int64_t low, int64_t high, const Shape& shape, uint64_t seed, uint64_t offset,
               DType dtype, const Device& device) {
  return one("randint", {},
             factory_attrs(dtype, device)
                 .set("low", low)
                 .set("high", high)
                 .set("shape", shape)
                 .set("seed", seed_value(seed))
                 .set("offset", seed_value(offset)));
}

}  // namespace flagstone::ops
