// The operator library's C++ API: one free function per op (ops::add(a, b), ops::softmax(x)),
// each a typed front to ops::call("name", inputs, attrs), which checks, dispatches and logs.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "flagstone/ops/attrs.h"
#include "flagstone/ops/dtype_rules.h"
#include "flagstone/ops/log.h"
#include "flagstone/ops/policy.h"
#include "flagstone/ops/registry.h"
#include "flagstone/runtime/tensor.h"

namespace flagstone::ops {

using TensorPair = std::pair<Tensor, Tensor>;

// ---- unary (torch semantics; integer inputs of float math compute in f32) ----
Tensor abs(const Tensor& x);
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor exp2(const Tensor& x);
Tensor log(const Tensor& x);
Tensor log2(const Tensor& x);
Tensor log1p(const Tensor& x);
Tensor expm1(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor reciprocal(const Tensor& x);
Tensor sin(const Tensor& x);
Tensor cos(const Tensor& x);
Tensor tan(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor erf(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01);
Tensor elu(const Tensor& x, double alpha = 1.0);
Tensor gelu(const Tensor& x, const std::string& approximate = "none");  // "none" or "tanh"
Tensor silu(const Tensor& x);
Tensor mish(const Tensor& x);
Tensor softplus(const Tensor& x, double beta = 1.0, double threshold = 20.0);
Tensor hardswish(const Tensor& x);
Tensor floor(const Tensor& x);
Tensor ceil(const Tensor& x);
Tensor round(const Tensor& x, int64_t decimals = 0);  // half to even
Tensor trunc(const Tensor& x);
Tensor sign(const Tensor& x);
Tensor clamp(const Tensor& x, std::optional<double> min, std::optional<double> max);
Tensor pow(const Tensor& x, double exponent);
Tensor pow(const Tensor& x, int64_t exponent);  // keeps integer dtypes
Tensor cast(const Tensor& x, DType dtype);
Tensor nan_to_num(const Tensor& x, double nan = 0.0, std::optional<double> posinf = {},
                  std::optional<double> neginf = {});
Tensor isnan(const Tensor& x);
Tensor isinf(const Tensor& x);
Tensor isfinite(const Tensor& x);
Tensor logical_not(const Tensor& x);
Tensor bitwise_not(const Tensor& x);

// ---- binary with broadcasting and type promotion ----
Tensor add(const Tensor& a, const Tensor& b, double alpha = 1.0);
Tensor sub(const Tensor& a, const Tensor& b, double alpha = 1.0);
Tensor mul(const Tensor& a, const Tensor& b);
// rounding_mode: "none" (true division), "floor" or "trunc".
Tensor div(const Tensor& a, const Tensor& b, const std::string& rounding_mode = "none");
Tensor floor_divide(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor fmod(const Tensor& a, const Tensor& b);
Tensor remainder(const Tensor& a, const Tensor& b);
Tensor atan2(const Tensor& a, const Tensor& b);
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor logical_and(const Tensor& a, const Tensor& b);
Tensor logical_or(const Tensor& a, const Tensor& b);
Tensor logical_xor(const Tensor& a, const Tensor& b);
Tensor bitwise_and(const Tensor& a, const Tensor& b);
Tensor bitwise_or(const Tensor& a, const Tensor& b);
Tensor bitwise_xor(const Tensor& a, const Tensor& b);
Tensor bitwise_left_shift(const Tensor& a, const Tensor& b);
Tensor bitwise_right_shift(const Tensor& a, const Tensor& b);
Tensor where(const Tensor& condition, const Tensor& a, const Tensor& b);
Tensor lerp(const Tensor& start, const Tensor& end, const Tensor& weight);
Tensor addcmul(const Tensor& x, const Tensor& t1, const Tensor& t2, double value = 1.0);
Tensor addcdiv(const Tensor& x, const Tensor& t1, const Tensor& t2, double value = 1.0);
// A 0-d tensor holding `value` that promotes with `like` as a Python scalar would in torch.
Tensor scalar_like(const Tensor& like, double value);
// out= variants: `out` must have the result's shape and dtype; it may be a strided view.
Tensor& add_out(Tensor& out, const Tensor& a, const Tensor& b, double alpha = 1.0);
Tensor& mul_out(Tensor& out, const Tensor& a, const Tensor& b);

// ---- reductions (dims empty: all dims) and scans ----
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor prod(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor amax(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor amin(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor var(const Tensor& x, const std::vector<int64_t>& dims = {}, double correction = 1,
           bool keepdim = false);
Tensor std(const Tensor& x, const std::vector<int64_t>& dims = {}, double correction = 1,
           bool keepdim = false);
// p: a number, or "fro", "inf", "-inf" through norm(x, AttrValue("inf")).
Tensor norm(const Tensor& x, AttrValue p = 2.0, const std::vector<int64_t>& dims = {},
            bool keepdim = false);
Tensor logsumexp(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor all(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor any(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor count_nonzero(const Tensor& x, const std::vector<int64_t>& dims = {});
TensorPair max(const Tensor& x, int64_t dim, bool keepdim = false);  // values, indices
TensorPair min(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmax(const Tensor& x, std::optional<int64_t> dim = {}, bool keepdim = false);
Tensor argmin(const Tensor& x, std::optional<int64_t> dim = {}, bool keepdim = false);
Tensor cumsum(const Tensor& x, int64_t dim);
Tensor cumprod(const Tensor& x, int64_t dim);
TensorPair cummax(const Tensor& x, int64_t dim);
TensorPair cummin(const Tensor& x, int64_t dim);

// ---- normalization ----
Tensor softmax(const Tensor& x, int64_t dim = -1);
Tensor log_softmax(const Tensor& x, int64_t dim = -1);
Tensor layer_norm(const Tensor& x, const Tensor& weight = {}, const Tensor& bias = {},
                  double eps = 1e-5, int64_t normalized_ndim = 1);
Tensor rms_norm(const Tensor& x, const Tensor& weight = {}, double eps = 1e-6);
Tensor group_norm(const Tensor& x, int64_t num_groups, const Tensor& weight = {},
                  const Tensor& bias = {}, double eps = 1e-5);
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight = {}, const Tensor& bias = {}, double eps = 1e-5);
Tensor dropout(const Tensor& x, double p, uint64_t seed, uint64_t offset = 0);
Tensor& softmax_out(Tensor& out, const Tensor& x, int64_t dim = -1);
Tensor& rms_norm_out(Tensor& out, const Tensor& x, const Tensor& weight, double eps = 1e-6);

// ---- large-model ops ----
Tensor embedding(const Tensor& indices, const Tensor& weight);
struct RopeScaling {
  std::string type = "none";  // none, linear, ntk, llama3
  double factor = 1.0;
  int64_t original_max_positions = 8192;  // llama3
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
};
// cos and sin tables [max_positions, rotary_dim / 2].
TensorPair rope_cache(int64_t max_positions, int64_t rotary_dim, double base = 10000.0,
                      const RopeScaling& scaling = {}, DType dtype = DType::kF32,
                      const Device& device = Device());
// x [..., tokens, heads, head_dim]; style "neox" (halves) or "gptj" (interleaved pairs).
Tensor rotary_embedding(const Tensor& x, const Tensor& positions, const Tensor& cos,
                        const Tensor& sin, const std::string& style = "neox");
Tensor silu_and_mul(const Tensor& x);
Tensor gelu_and_mul(const Tensor& x, const std::string& approximate = "none");
// Returns (rms_norm(x + residual) * weight, x + residual).
TensorPair add_rms_norm(const Tensor& x, const Tensor& residual, const Tensor& weight,
                        double eps = 1e-6);
Tensor cross_entropy(const Tensor& logits, const Tensor& target,
                     const std::string& reduction = "mean", int64_t ignore_index = -100,
                     double label_smoothing = 0.0);
Tensor one_hot(const Tensor& indices, int64_t num_classes = -1);

// ---- attention ----
struct AttentionOptions {
  bool causal = false;
  std::optional<double> scale;  // default 1/sqrt(head_dim)
  // torch's is_causal aligns the mask top-left; decode/chunked prefill over a cache needs
  // bottom-right (query i sees keys up to i + keys - queries).
  bool bottom_right = false;
};
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& mask = {}, const AttentionOptions& options = {});
Tensor paged_attention(const Tensor& q, const Tensor& key_cache, const Tensor& value_cache,
                       const Tensor& block_tables, const Tensor& seq_lens,
                       std::optional<double> scale = {});

// ---- ordering and sampling ----
TensorPair topk(const Tensor& x, int64_t k, int64_t dim = -1, bool largest = true);
TensorPair sort(const Tensor& x, int64_t dim = -1, bool descending = false);
Tensor argsort(const Tensor& x, int64_t dim = -1, bool descending = false);
struct SamplingParams {
  double temperature = 1.0;  // 0: greedy
  int64_t top_k = 0;         // 0: off
  double top_p = 1.0;
  double min_p = 0.0;
  uint64_t seed = 0;
  uint64_t offset = 0;
};
Tensor sample(const Tensor& logits, const SamplingParams& params);
Tensor multinomial(const Tensor& probs, int64_t num_samples, bool replacement, uint64_t seed,
                   uint64_t offset = 0);

// ---- linear algebra ----
Tensor mm(const Tensor& a, const Tensor& b);
Tensor bmm(const Tensor& a, const Tensor& b);
Tensor addmm(const Tensor& bias, const Tensor& a, const Tensor& b, double beta = 1.0,
             double alpha = 1.0);
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = {});
Tensor matmul(const Tensor& a, const Tensor& b);
Tensor linear_int8(const Tensor& x, const Tensor& weight, const Tensor& scale,
                   const Tensor& bias = {});
Tensor linear_quantized(const Tensor& x, const Tensor& weight, const Tensor& bias = {});
Tensor dequantize(const Tensor& x, DType dtype = DType::kF32);
Tensor& mm_out(Tensor& out, const Tensor& a, const Tensor& b);
Tensor& linear_out(Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias = {});

// ---- data movement (split, chunk and the Tensor view methods return views) ----
Tensor contiguous(const Tensor& x);
Tensor cat(const std::vector<Tensor>& tensors, int64_t dim = 0);
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim = 0);
std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim = 0);
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim = 0);
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim = 0);
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
Tensor scatter(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
Tensor index_put(const Tensor& x, const Tensor& index, const Tensor& values,
                 bool accumulate = false);
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);
Tensor masked_select(const Tensor& x, const Tensor& mask);
Tensor nonzero(const Tensor& x);
Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, const std::string& mode = "constant",
           double value = 0.0);
Tensor repeat(const Tensor& x, const std::vector<int64_t>& repeats);
Tensor repeat_interleave(const Tensor& x, int64_t repeats, std::optional<int64_t> dim = {});
Tensor tile(const Tensor& x, const std::vector<int64_t>& reps);
Tensor flip(const Tensor& x, const std::vector<int64_t>& dims);
Tensor roll(const Tensor& x, const std::vector<int64_t>& shifts,
            const std::vector<int64_t>& dims = {});
Tensor tril(const Tensor& x, int64_t diagonal = 0);
Tensor triu(const Tensor& x, int64_t diagonal = 0);

// ---- factories (seeded ones draw the Philox stream of flagstone/ops/random.h) ----
Tensor arange(double start, double end, double step = 1, DType dtype = DType::kF32,
              const Device& device = Device());
Tensor arange(int64_t end, const Device& device = Device());  // i64 0..end-1
Tensor linspace(double start, double end, int64_t steps, DType dtype = DType::kF32,
                const Device& device = Device());
Tensor full(const Shape& shape, double value, DType dtype = DType::kF32,
            const Device& device = Device());
Tensor zeros(const Shape& shape, DType dtype = DType::kF32, const Device& device = Device());
Tensor ones(const Shape& shape, DType dtype = DType::kF32, const Device& device = Device());
Tensor eye(int64_t n, std::optional<int64_t> m = {}, DType dtype = DType::kF32,
           const Device& device = Device());
Tensor rand(const Shape& shape, uint64_t seed, uint64_t offset = 0, DType dtype = DType::kF32,
            const Device& device = Device());
Tensor randn(const Shape& shape, uint64_t seed, uint64_t offset = 0, DType dtype = DType::kF32,
             const Device& device = Device());
Tensor randint(int64_t low, int64_t high, const Shape& shape, uint64_t seed, uint64_t offset = 0,
               DType dtype = DType::kI64, const Device& device = Device());

}  // namespace flagstone::ops
