// The ops a model's forward pass uses, run either through dispatch (the optimized path on the
// model's device) or by each op's float64 reference on the cpu (the reference model).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "flagstone/ops/ops.h"

namespace flagstone::engine::detail {

// Device time of each call, taken with events around it (for `bench model --profile`).
struct OpTimer {
  struct Span {
    std::string op;  // "linear [3072, 2048]"
    uint64_t bytes;  // weight bytes the op reads (matrix products), else 0
    runtime::Event start, end;
  };
  Device device;
  std::vector<Span> spans;
  // Records the start of a span named `op` on the device's stream; end() closes the last one.
  void begin(std::string op, uint64_t bytes = 0);
  void end();
};

class OpRunner {
 public:
  explicit OpRunner(bool reference) : reference_(reference) {}
  bool reference() const { return reference_; }
  // While set, every call is timed into `timer`.
  void set_timer(OpTimer* timer) { timer_ = timer; }
  OpTimer* timer() const { return timer_; }

  Tensor embedding(const Tensor& tokens, const Tensor& table) const;
  Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps) const;
  // Returns (rms_norm(x + residual) * weight, x + residual).
  ops::TensorPair add_rms_norm(const Tensor& x, const Tensor& residual, const Tensor& weight,
                               double eps) const;
  // Plain or GGUF-quantized weights [out, in]; `bias` may be undefined.
  Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = {}) const;
  Tensor rotary(const Tensor& x, const Tensor& positions, const Tensor& cos, const Tensor& sin,
                const std::string& style) const;
  // q [b, hq, t, d] over k, v [b, hk, n, d]; causal aligned bottom-right when `causal`.
  Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                   bool causal) const;
  // One query per sequence q [b, hq, d] over key/value caches [blocks, block_size, hk, d]:
  // sequence s reads the first seq_lens[s] positions of its blocks in block_tables [b, n].
  Tensor paged_attention(const Tensor& q, const Tensor& keys, const Tensor& values,
                         const Tensor& block_tables, const Tensor& seq_lens) const;
  Tensor silu_and_mul(const Tensor& x) const;
  Tensor add(const Tensor& a, const Tensor& b) const;

 private:
  std::vector<Tensor> call(std::string_view op, const std::vector<Tensor>& inputs,
                           const ops::Attrs& attrs = {}) const;
  bool reference_;
  OpTimer* timer_ = nullptr;
};

}  // namespace flagstone::engine::detail
