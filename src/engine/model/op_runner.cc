// Both paths call ops by name with the attributes of their schemas; only the runner differs.
#include "op_runner.h"

namespace flagstone::engine::detail {

void OpTimer::begin(std::string op, uint64_t bytes) {
  Span span{std::move(op), bytes, runtime::Event(device), runtime::Event(device)};
  span.start.record(runtime::Stream::default_stream(device));
  spans.push_back(std::move(span));
}

void OpTimer::end() {
  spans.back().end.record(runtime::Stream::default_stream(device));
}

std::vector<Tensor> OpRunner::call(std::string_view op, const std::vector<Tensor>& inputs,
                                   const ops::Attrs& attrs) const {
  if (reference_) return ops::call_reference(op, inputs, attrs);
  if (!timer_) return ops::call(op, inputs, attrs);
  // Matrix products are told apart by their weight's shape (q/k/v, o, gate/up, down, head).
  std::string name(op);
  uint64_t bytes = 0;
  if (op.starts_with("linear")) {
    name.push_back(' ');
    name.append(shape_to_string(inputs[1].shape()));
    bytes = inputs[1].nbytes();
  }
  timer_->begin(std::move(name), bytes);
  std::vector<Tensor> out = ops::call(op, inputs, attrs);
  timer_->end();
  return out;
}

Tensor OpRunner::embedding(const Tensor& tokens, const Tensor& table) const {
  return call("embedding", {tokens, table})[0];
}

Tensor OpRunner::rms_norm(const Tensor& x, const Tensor& weight, double eps) const {
  return call("rms_norm", {x, weight}, {{"eps", eps}})[0];
}

ops::TensorPair OpRunner::add_rms_norm(const Tensor& x, const Tensor& residual,
                                       const Tensor& weight, double eps) const {
  auto out = call("add_rms_norm", {x, residual, weight}, {{"eps", eps}});
  return {out[0], out[1]};
}

Tensor OpRunner::linear(const Tensor& x, const Tensor& weight, const Tensor& bias) const {
  if (is_quantized(weight.dtype())) return call("linear_quantized", {x, weight, bias})[0];
  return call("linear", {x, weight, bias})[0];
}

Tensor OpRunner::rotary(const Tensor& x, const Tensor& positions, const Tensor& cos,
                        const Tensor& sin, const std::string& style) const {
  return call("rotary_embedding", {x, positions, cos, sin}, {{"style", style}})[0];
}

Tensor OpRunner::attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                           bool causal) const {
  ops::Attrs attrs{{"causal", causal}, {"causal_alignment", "bottom_right"}};
  return call("scaled_dot_product_attention", {q, k, v, mask}, attrs)[0];
}

Tensor OpRunner::paged_attention(const Tensor& q, const Tensor& keys, const Tensor& values,
                                 const Tensor& block_tables, const Tensor& seq_lens) const {
  return call("paged_attention", {q, keys, values, block_tables, seq_lens})[0];
}

Tensor OpRunner::silu_and_mul(const Tensor& x) const {
  return call("silu_and_mul", {x})[0];
}

Tensor OpRunner::add(const Tensor& a, const Tensor& b) const {
  return call("add", {a, b})[0];
}

}  // namespace flagstone::engine::detail
