// Composed math for the generated kernels. Each formula is chosen to stay within a few f32 ulps
// over the whole range (cancellation-free log1p/expm1 after Kahan; Cephes' atanf polynomial).
#include "generated/math.h"

namespace flagstone::ops::gen {

Value log1p(KernelBuilder& k, Value x) {
  // log(u) * x / (u - 1) cancels the rounding of u = 1 + x.
  Value u = x + 1.0f;
  Value d = u - 1.0f;
  Value r = k.where(d == 0.0f, x, k.log(u) * (x / d));
  return k.where(x > 1e38f, k.log(x), r);
}

Value expm1(KernelBuilder& k, Value x) {
  Value u = k.exp(x);
  Value um1 = u - 1.0f;
  Value r = k.where(um1 == 0.0f, x, um1 * (x / k.log(u)));
  r = k.where(um1 == -1.0f, um1, r);
  return k.where(x > 50.0f, um1, r);
}

Value sigmoid(KernelBuilder& k, Value x) {
  return 1.0f / (k.exp(-x) + 1.0f);
}

Value gelu_erf(KernelBuilder& k, Value x) {
  return x * 0.5f * (k.erf(x * 0.70710678118654752f) + 1.0f);
}

Value gelu_tanh(KernelBuilder& k, Value x) {
  Value inner = (x + x * x * x * 0.044715f) * 0.7978845608028654f;
  return x * 0.5f * (k.tanh(inner) + 1.0f);
}

Value softplus(KernelBuilder& k, Value x, Value beta, Value threshold) {
  Value bx = x * beta;
  return k.where(bx > threshold, x, log1p(k, k.exp(bx)) / beta);
}

Value trunc(KernelBuilder& k, Value x) {
  return k.where(x < 0.0f, k.ceil(x), k.floor(x));
}

Value round_half_even(KernelBuilder& k, Value x) {
  // x - floor(x) is exact below 2^23, and above it x is already an integer (difference 0).
  Value r = k.floor(x);
  Value d = x - r;
  Value tie = k.where(r % 2.0f == 0.0f, r, r + 1.0f);
  return k.where(d > 0.5f, r + 1.0f, k.where(d < 0.5f, r, tie));
}

Value atan2(KernelBuilder& k, Value y, Value x) {
  constexpr float kPi = 3.14159265358979323846f;
  Value t = k.abs(y) / k.abs(x);  // in [0, inf]
  Value big = t > 2.414213562373095f;
  Value mid = t > 0.4142135623730950f;
  Value zero = k.literal_like(0.0f, t);
  Value base = k.where(big, zero + kPi / 2, k.where(mid, zero + kPi / 4, zero));
  Value z = k.where(big, -1.0f / t, k.where(mid, (t - 1.0f) / (t + 1.0f), t));
  Value zz = z * z;
  Value p = (((zz * 8.05374449538e-2f - 1.38776856032e-1f) * zz + 1.99777106478e-1f) * zz -
             3.33329491539e-1f) *
                zz * z +
            z;
  Value a = base + p;
  a = k.where((x == 0.0f) & (y == 0.0f), zero, a);
  a = k.where(x < 0.0f, kPi - a, a);
  return k.where(y < 0.0f, -a, a);
}

Value floor_divide(KernelBuilder& k, Value a, Value b) {
  Value mod = a % b;
  Value div = (a - mod) / b;
  Value adjust = (mod != 0.0f) & ((b < 0.0f) != (mod < 0.0f));
  div = k.where(adjust, div - 1.0f, div);
  Value fl = k.floor(div);
  fl = k.where(div - fl > 0.5f, fl + 1.0f, fl);
  return k.where(b == 0.0f, a / b, fl);
}

}  // namespace flagstone::ops::gen
