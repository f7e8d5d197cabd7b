// The op cases of `flagstone bench ops`: for a bench op name and a token count, the tensors to
// build on the device, the registry call to time, and the byte and flop counts of that call.
#pragma once

#include <string>
#include <vector>

#include "flagstone/bench/ops_bench.h"
#include "flagstone/ops/attrs.h"
#include "flagstone/runtime/tensor.h"

namespace flagstone::bench {

struct OpCase {
  OpsBenchRow row;          // op, tokens, shape, dtype, bytes, flops filled in
  std::string registry_op;  // "rotary_embedding", "scaled_dot_product_attention", ...
  std::vector<Tensor> inputs;
  ops::Attrs attrs;
  bool compute_bound() const { return row.flops > 0; }
};

// Builds the inputs on `device` (seeded random values; valid targets and positions).
OpCase make_case(const std::string& op, int64_t tokens, const ModelDims& dims, DType dtype,
                 const Device& device);

// The dtype the bench runs for `text` on `backend` ("auto": f32 on cpu, else bf16).
DType resolve_dtype(std::string_view text, bool on_cpu);

}  // namespace flagstone::bench
