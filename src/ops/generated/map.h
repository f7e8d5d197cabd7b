// The generated elementwise "map" kernel: out = body(inputs..., scalars...) over broadcast,
// strided operands. One kernel per (body, dtypes, rank variant), built from a small table.
#pragma once

#include <string>
#include <vector>

#include "generated/gen_common.h"

namespace flagstone::ops::gen {

// A scalar launch argument of a map kernel (f32 or i64 in the kernel).
struct Scalar {
  DType dtype = DType::kF32;
  double f = 0;
  int64_t i = 0;
  static Scalar f32(double v) { return {DType::kF32, v, 0}; }
  static Scalar i64(int64_t v) { return {DType::kI64, 0, v}; }
};

// Computes one output tile from the loaded input tiles (f16/bf16 already widened to f32) and
// the scalar arguments; `variant` selects among compile-time flavours (gelu's approximation).
using MapBody = std::function<Value(KernelBuilder& k, const std::vector<Value>& x,
                                    const std::vector<Value>& s, int variant)>;

// Runs out = body(inputs, scalars) elementwise; inputs broadcast to out's shape. `key` names
// the body (with its variant) in the kernel cache.
void run_map(std::string_view op, const std::string& key, const MapBody& body, int variant,
             const std::vector<Tensor>& inputs, const Tensor& out,
             const std::vector<Scalar>& scalars = {});

}  // namespace flagstone::ops::gen
