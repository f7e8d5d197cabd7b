// The typed free functions of flagstone/ops/ops.h for elementwise, reduction and normalization
// ops: each packs its arguments into attributes and goes through ops::call.
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

Attrs reduce_attrs(const std::vector<int64_t>& dims, bool keepdim) {
  return Attrs{{"dims", dims}, {"keepdim", keepdim}};
}

Tensor& out_one(std::string_view op, Tensor& out, const std::vector<Tensor>& inputs,
                const Attrs& attrs) {
  std::vector<Tensor> outs{out};
  call_out(op, inputs, attrs, outs);
  return out;
}

}  // namespace

#define FS_UNARY(name)           \
  Tensor name(const Tensor& x) { \
    return one(#name, {x});      \
  }
FS_UNARY(abs)
FS_UNARY(neg)
FS_UNARY(exp)
FS_UNARY(exp2)
FS_UNARY(log)
FS_UNARY(log2)
FS_UNARY(log1p)
FS_UNARY(expm1)
FS_UNARY(sqrt)
FS_UNARY(rsqrt)
FS_UNARY(reciprocal)
FS_UNARY(sin)
FS_UNARY(cos)
FS_UNARY(tan)
FS_UNARY(tanh)
FS_UNARY(sigmoid)
FS_UNARY(erf)
FS_UNARY(relu)
FS_UNARY(silu)
FS_UNARY(mish)
FS_UNARY(hardswish)
FS_UNARY(floor)
FS_UNARY(ceil)
FS_UNARY(trunc)
FS_UNARY(sign)
FS_UNARY(isnan)
FS_UNARY(isinf)
FS_UNARY(isfinite)
FS_UNARY(logical_not)
FS_UNARY(bitwise_not)
#undef FS_UNARY

Tensor leaky_relu(const Tensor& x, double s) {
  return one("leaky_relu", {x}, {{"negative_slope", s}});
}
Tensor elu(const Tensor& x, double alpha) {
  return one("elu", {x}, {{"alpha", alpha}});
}
Tensor gelu(const Tensor& x, const std::string& a) {
  return one("gelu", {x}, {{"approximate", a}});
}
Tensor softplus(const Tensor& x, double beta, double threshold) {
  return one("softplus", {x}, {{"beta", beta}, {"threshold", threshold}});
}
Tensor round(const Tensor& x, int64_t decimals) {
  return one("round", {x}, {{"decimals", decimals}});
}
Tensor clamp(const Tensor& x, std::optional<double> min, std::optional<double> max) {
  Attrs attrs;
  if (min) attrs.set("min", *min);
  if (max) attrs.set("max", *max);
  return one("clamp", {x}, attrs);
}
Tensor pow(const Tensor& x, double e) {
  return one("pow_scalar", {x}, {{"exponent", e}});
}
Tensor pow(const Tensor& x, int64_t e) {
  return one("pow_scalar", {x}, {{"exponent", e}});
}
Tensor cast(const Tensor& x, DType dtype) {
  return one("cast", {x}, {{"dtype", std::string(dtype_name(dtype))}});
}
Tensor nan_to_num(const Tensor& x, double nan, std::optional<double> posinf,
                  std::optional<double> neginf) {
  Attrs attrs{{"nan", nan}};
  if (posinf) attrs.set("posinf", *posinf);
  if (neginf) attrs.set("neginf", *neginf);
  return one("nan_to_num", {x}, attrs);
}

#define FS_BINARY(name)                           \
  Tensor name(const Tensor& a, const Tensor& b) { \
    return one(#name, {a, b});                    \
  }
FS_BINARY(mul)
FS_BINARY(floor_divide)
FS_BINARY(maximum)
FS_BINARY(minimum)
FS_BINARY(fmod)
FS_BINARY(remainder)
FS_BINARY(atan2)
FS_BINARY(eq)
FS_BINARY(ne)
FS_BINARY(lt)
FS_BINARY(le)
FS_BINARY(gt)
FS_BINARY(ge)
FS_BINARY(logical_and)
FS_BINARY(logical_or)
FS_BINARY(logical_xor)
FS_BINARY(bitwise_and)
FS_BINARY(bitwise_or)
FS_BINARY(bitwise_xor)
FS_BINARY(bitwise_left_shift)
FS_BINARY(bitwise_right_shift)
#undef FS_BINARY

Tensor add(const Tensor& a, const Tensor& b, double alpha) {
  return one("add", {a, b}, alpha == 1.0 ? Attrs{} : Attrs{{"alpha", alpha}});
}
Tensor sub(const Tensor& a, const Tensor& b, double alpha) {
  return one("sub", {a, b}, alpha == 1.0 ? Attrs{} : Attrs{{"alpha", alpha}});
}
Tensor div(const Tensor& a, const Tensor& b, const std::string& mode) {
  return one("div", {a, b}, {{"rounding_mode", mode}});
}
Tensor pow(const Tensor& a, const Tensor& b) {
  return one("pow", {a, b});
}
Tensor where(const Tensor& c, const Tensor& a, const Tensor& b) {
  return one("where", {c, a, b});
}
Tensor lerp(const Tensor& s, const Tensor& e, const Tensor& w) {
  return one("lerp", {s, e, w});
}
Tensor addcmul(const Tensor& x, const Tensor& t1, const Tensor& t2, double value) {
  return one("addcmul", {x, t1, t2}, {{"value", value}});
}
Tensor addcdiv(const Tensor& x, const Tensor& t1, const Tensor& t2, double value) {
  return one("addcdiv", {x, t1, t2}, {{"value", value}});
}

Tensor scalar_like(const Tensor& like, double value) {
  // Python scalars never widen a tensor of their category: a float scalar takes a float
  // tensor's dtype (f32 for integer tensors); an integral one an integer tensor's dtype.
  bool integral = value == static_cast<double>(static_cast<int64_t>(value));
  DType dtype = is_floating(like.dtype())
                    ? like.dtype()
                    : (integral && like.dtype() != DType::kBool ? like.dtype() : DType::kF32);
  return full({}, value, dtype, like.device());
}

Tensor& add_out(Tensor& out, const Tensor& a, const Tensor& b, double alpha) {
  return out_one("add", out, {a, b}, alpha == 1.0 ? Attrs{} : Attrs{{"alpha", alpha}});
}
Tensor& mul_out(Tensor& out, const Tensor& a, const Tensor& b) {
  return out_one("mul", out, {a, b}, {});
}

#define FS_REDUCE(name)                                                          \
  Tensor name(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) { \
    return one(#name, {x}, reduce_attrs(dims, keepdim));                         \
  }
FS_REDUCE(sum)
FS_REDUCE(mean)
FS_REDUCE(prod)
FS_REDUCE(amax)
FS_REDUCE(amin)
FS_REDUCE(logsumexp)
FS_REDUCE(all)
FS_REDUCE(any)
#undef FS_REDUCE

Tensor var(const Tensor& x, const std::vector<int64_t>& dims, double correction, bool keepdim) {
  return one("var", {x}, reduce_attrs(dims, keepdim).set("correction", correction));
}
Tensor std(const Tensor& x, const std::vector<int64_t>& dims, double correction, bool keepdim) {
  return one("std", {x}, reduce_attrs(dims, keepdim).set("correction", correction));
}
Tensor norm(const Tensor& x, AttrValue p, const std::vector<int64_t>& dims, bool keepdim) {
  return one("norm", {x}, reduce_attrs(dims, keepdim).set("p", p));
}
Tensor count_nonzero(const Tensor& x, const std::vector<int64_t>& dims) {
  return one("count_nonzero", {x}, reduce_attrs(dims, false));
}
TensorPair max(const Tensor& x, int64_t dim, bool keepdim) {
  return two("max", {x}, {{"dim", dim}, {"keepdim", keepdim}});
}
TensorPair min(const Tensor& x, int64_t dim, bool keepdim) {
  return two("min", {x}, {{"dim", dim}, {"keepdim", keepdim}});
}
Tensor argmax(const Tensor& x, std::optional<int64_t> dim, bool keepdim) {
  Attrs attrs{{"keepdim", keepdim}};
  if (dim) attrs.set("dim", *dim);
  return one("argmax", {x}, attrs);
}
Tensor argmin(const Tensor& x, std::optional<int64_t> dim, bool keepdim) {
  Attrs attrs{{"keepdim", keepdim}};
  if (dim) attrs.set("dim", *dim);
  return one("argmin", {x}, attrs);
}
Tensor cumsum(const Tensor& x, int64_t dim) {
  return one("cumsum", {x}, {{"dim", dim}});
}
Tensor cumprod(const Tensor& x, int64_t dim) {
  return one("cumprod", {x}, {{"dim", dim}});
}
TensorPair cummax(const Tensor& x, int64_t dim) {
  return two("cummax", {x}, {{"dim", dim}});
}
TensorPair cummin(const Tensor& x, int64_t dim) {
  return two("cummin", {x}, {{"dim", dim}});
}

Tensor softmax(const Tensor& x, int64_t dim) {
  return one("softmax", {x}, {{"dim", dim}});
}
Tensor log_softmax(const Tensor& x, int64_t dim) {
  return one("log_softmax", {x}, {{"dim", dim}});
}
Tensor layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, double eps, int64_t nd) {
  return one("layer_norm", {x, w, b}, {{"eps", eps}, {"normalized_ndim", nd}});
}
Tensor rms_norm(const Tensor& x, const Tensor& w, double eps) {
  return one("rms_norm", {x, w}, {{"eps", eps}});
}
Tensor group_norm(const Tensor& x, int64_t groups, const Tensor& w, const Tensor& b, double eps) {
  return one("group_norm", {x, w, b}, {{"num_groups", groups}, {"eps", eps}});
}
Tensor batch_norm(const Tensor& x, const Tensor& mean, const Tensor& var, const Tensor& w,
                  const Tensor& b, double eps) {
  return one("batch_norm", {x, mean, var, w, b}, {{"eps", eps}});
}
Tensor dropout(const Tensor& x, double p, uint64_t seed, uint64_t offset) {
  return one(
      "dropout", {x},
      {{"p", p}, {"seed", static_cast<int64_t>(seed)}, {"offset", static_cast<int64_t>(offset)}});
}
Tensor& softmax_out(Tensor& out, const Tensor& x, int64_t dim) {
  return out_one("softmax", out, {x}, {{"dim", dim}});
}
Tensor& rms_norm_out(Tensor& out, const Tensor& x, const Tensor& w, double eps) {
  return out_one("rms_norm", out, {x, w}, {{"eps", eps}});
}

}  // namespace flagstone::ops
