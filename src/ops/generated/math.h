// Math functions the tile language lacks as primitives, composed from the ones it has with
// f32 accuracy (log1p, expm1, atan2, round-half-even...), shared by the generated kernels.
#pragma once

#include "flagstone/compiler/builder.h"

namespace flagstone::ops::gen {

using compiler::KernelBuilder;
using compiler::Value;

// All take and return f32 tiles or scalars.
Value log1p(KernelBuilder& k, Value x);
Value expm1(KernelBuilder& k, Value x);
Value sigmoid(KernelBuilder& k, Value x);
Value gelu_erf(KernelBuilder& k, Value x);
Value gelu_tanh(KernelBuilder& k, Value x);
// torch's softplus: x where beta*x > threshold, else log1p(exp(beta*x))/beta.
Value softplus(KernelBuilder& k, Value x, Value beta, Value threshold);
Value trunc(KernelBuilder& k, Value x);
Value round_half_even(KernelBuilder& k, Value x);
Value atan2(KernelBuilder& k, Value y, Value x);
// torch's floor division of floats (Python semantics, fmod-based as the reference).
Value floor_divide(KernelBuilder& k, Value a, Value b);

}  // namespace flagstone::ops::gen
