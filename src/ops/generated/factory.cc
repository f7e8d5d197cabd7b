// Generated factories: full / zeros / ones, arange, linspace, eye, and the seeded rand, randn,
// randint, whose kernels compute the Philox-4x32-10 stream of flagstone/ops/random.h so every
// device produces the same values as the cpu for the same (seed, offset).
#include <array>
#include <cmath>
#include <variant>

#include "flagstone/ops/random.h"
#include "generated/flat.h"
#include "internal.h"

namespace flagstone::ops::gen {
namespace {

const Config kConfig{{"BLOCK", 512}, {"num_warps", 4}};
constexpr int64_t kMask32 = 0xFFFFFFFFll;

enum class Kind { kFill, kArangeInt, kRamp, kEye, kUniform, kNormal, kInteger };

// Tiles of u32 values held in i64 (the language has no u32): products stay below 2^63.
struct HiLo {
  Value hi, lo;
};

// Full 64-bit product of a (< 2^32) and b (<= 2^32), split into 32-bit words exactly: the
// 16-bit halves of a keep every partial product below 2^49.
HiLo mul_wide(Value a, Value b) {
  Value p_hi = (a >> 16) * b;
  Value p_lo = (a & 0xFFFF) * b;
  Value mid = ((p_hi & 0xFFFF) << 16) + p_lo;
  return {(p_hi >> 16) + (mid >> 32), mid & kMask32};
}

// Philox-4x32-10 of the counter (c0..c3) under the key (k0, k1): four u32 words.
std::array<Value, 4> philox(KernelBuilder& k, std::array<Value, 4> c, Value k0, Value k1) {
  constexpr int64_t kMul0 = 0xD2511F53ll, kMul1 = 0xCD9E8D57ll;
  constexpr int64_t kWeyl0 = 0x9E3779B9ll, kWeyl1 = 0xBB67AE85ll;
  Value m0 = k.constant(kMul0, DType::kI64), m1 = k.constant(kMul1, DType::kI64);
  for (int round = 0; round < 10; ++round) {
    HiLo p0 = mul_wide(c[0], m0), p1 = mul_wide(c[2], m1);
    c = {p1.hi ^ c[1] ^ k0, p1.lo, p0.hi ^ c[3] ^ k1, p0.lo};
    k0 = (k0 + kWeyl0) & kMask32;
    k1 = (k1 + kWeyl1) & kMask32;
  }
  return c;
}

// The 32 random bits of stream element `index` (i64 tile), as random_bits() computes them.
Value random_bits(KernelBuilder& k, Value index, Value seed, Value offset) {
  Value block = index >> 2;
  std::array<Value, 4> c{block & kMask32, block >> 32, offset & kMask32, (offset >> 32) & kMask32};
  auto r = philox(k, c, seed & kMask32, (seed >> 32) & kMask32);
  Value lane = index & 3;
  return k.where(lane == 0, r[0], k.where(lane == 1, r[1], k.where(lane == 2, r[2], r[3])));
}

void build_factory(KernelBuilder& k, DType dtype, Kind kind) {
  int64_t block = k.meta("BLOCK");
  TensorArg out = k.tensor_arg("out", dtype, kFlatRank);
  Value fa = k.scalar_arg("fa", DType::kF32), fb = k.scalar_arg("fb", DType::kF32);
  Value ia = k.scalar_arg("ia", DType::kI64), ib = k.scalar_arg("ib", DType::kI64);
  Value n = k.scalar_arg("n", DType::kI32);
  auto [offs, mask] = flat_block(k, n);
  Coords c = flat_coords(offs, out);
  Value where_to = flat_offset(c, out);
  Value i64 = offs.to(DType::kI64);
  Value v;
  switch (kind) {
    case Kind::kFill:  // the value's bits in ia (dtype is the bits dtype)
      v = ia.broadcast_to({block});
      break;
    case Kind::kArangeInt:  // ia + i * ib
      v = i64 * ib + ia;
      break;
    case Kind::kRamp: {  // linspace's two halves (ia = steps / 2; ib = steps - 1), arange: ia = n
      Value fi = offs.to(DType::kF32);
      Value end = k.scalar_arg("end", DType::kF32);
      v = k.where(i64 < ia, fa + fi * fb, end - (ib - i64).to(DType::kF32) * fb);
      break;
    }
    case Kind::kEye:  // the bits of one in ia
      v = k.where(c[kFlatRank - 1] == c[kFlatRank - 2], ia.broadcast_to({block}),
                  k.zeros({block}, DType::kI64));
      break;
    case Kind::kUniform: {  // ia = seed, ib = offset
      Value bits = random_bits(k, i64, ia, ib);
      v = (bits >> 8).to(DType::kF32) * (1.0f / 16777216.0f);
      break;
    }
    case Kind::kNormal: {  // Box-Muller over the element pair, in f64 as random_normal()
      Value pair = (i64 >> 1) << 1;
      Value u1 = ((random_bits(k, pair, ia, ib) >> 8).to(DType::kF64) + 1.0) / 16777216.0;
      Value u2 = (random_bits(k, pair + 1, ia, ib) >> 8).to(DType::kF64) / 16777216.0;
      Value r = k.sqrt(k.log(u1) * -2.0);
      Value angle = u2 * (2.0 * 3.14159265358979323846);
      v = k.where((i64 & 1) == 0, r * k.cos(angle), r * k.sin(angle));
      break;
    }
    case Kind::kInteger: {  // low + (bits * range) >> 32; ia = low, ib = range; seed, offset
      Value seed = k.scalar_arg("seed", DType::kI64), offset = k.scalar_arg("offset", DType::kI64);
      v = ia + mul_wide(random_bits(k, i64, seed, offset), ib).hi;
      break;
    }
  }
  k.store(out.ptr + where_to, v.to(dtype), mask);
}

struct FactoryArgs {
  double fa = 0, fb = 0;
  int64_t ia = 0, ib = 0;
  std::vector<compiler::Arg> extra;
};

void run_factory(std::string_view op, Kind kind, const Tensor& out, FactoryArgs a) {
  int64_t n = out.numel();
  if (n == 0) return;
  DType dtype = out.dtype();
  std::string key =
      "factory_" + std::to_string(static_cast<int>(kind)) + "_" + std::string(dtype_name(dtype));
  std::vector<compiler::Arg> args{to_flat_rank(out)};
  args.emplace_back(a.fa);
  args.emplace_back(a.fb);
  args.emplace_back(a.ia);
  args.emplace_back(a.ib);
  args.emplace_back(n);
  for (auto& e : a.extra) args.push_back(std::move(e));
  launch_flat(
      op, key, [=](KernelBuilder& k) { build_factory(k, dtype, kind); }, kConfig, out.device(), n,
      args);
}

bool int_attr(const Attrs& attrs, const char* name) {
  return !attrs.has(name) || std::holds_alternative<int64_t>(attrs.items().at(name).value());
}

// `value` NaN: the "value" attribute, kept exact when it is an integer for an integer dtype.
void fill(KernelArgs& args, const char* op, double value) {
  const Tensor& out = args.outputs[0];
  FactoryArgs a;
  if (std::isnan(value) && int_attr(args.attrs, "value") && !is_floating(out.dtype())) {
    int64_t v = args.attrs.get_int("value", 0);
    a.ia = out.dtype() == DType::kBool ? int64_t{v != 0} : v;
  } else {
    a.ia = value_bits(std::isnan(value) ? args.attrs.double_at("value") : value, out.dtype());
  }
  run_factory(op, Kind::kFill, as_bits(out), a);
}

void eye(KernelArgs& args) {
  const Tensor& out = args.outputs[0];
  run_factory("eye", Kind::kEye, as_bits(out), {0, 0, value_bits(1, out.dtype()), 0, {}});
}

void arange(KernelArgs& args) {
  const Tensor& out = args.outputs[0];
  if (!is_floating(out.dtype()) && int_attr(args.attrs, "start") && int_attr(args.attrs, "step")) {
    run_factory("arange", Kind::kArangeInt, out,
                {0, 0, args.attrs.get_int("start", 0), args.attrs.get_int("step", 1), {}});
    return;
  }
  FactoryArgs a{
      args.attrs.get_double("start", 0), args.attrs.get_double("step", 1), out.numel(), 0, {}};
  a.extra.emplace_back(0.0);
  run_factory("arange", Kind::kRamp, out, a);
}

void linspace(KernelArgs& args) {
  const Tensor& out = args.outputs[0];
  int64_t n = out.numel();
  double start = args.attrs.double_at("start"), end = args.attrs.double_at("end");
  double step = n > 1 ? (end - start) / static_cast<double>(n - 1) : 0;
  FactoryArgs a{start, step, n / 2, n - 1, {}};
  a.extra.emplace_back(end);
  run_factory("linspace", Kind::kRamp, out, a);
}

void random(KernelArgs& args, Kind kind) {
  auto seed = args.attrs.get_int("seed", 0), offset = args.attrs.get_int("offset", 0);
  const char* op = kind == Kind::kUniform ? "rand" : kind == Kind::kNormal ? "randn" : "randint";
  if (kind == Kind::kInteger) {
    int64_t low = args.attrs.get_int("low", 0), high = args.attrs.int_at("high");
    FactoryArgs a{0, 0, low, high - low, {}};
    a.extra.emplace_back(seed);
    a.extra.emplace_back(offset);
    run_factory(op, kind, args.outputs[0], a);
    return;
  }
  run_factory(op, kind, args.outputs[0], {0, 0, seed, offset, {}});
}

// Float ramps compute in f32 like the kernels of torch on GPUs; integer ramps exactly.
std::string float_ramp_supports(const KernelArgs& args) {
  return is_floating(args.outputs[0].dtype()) ? "" : "integer linspace";
}

}  // namespace

void register_factories(Registry& r) {
  const std::vector<DType> plain{DType::kF32, DType::kF16, DType::kBF16, DType::kF64, DType::kI64,
                                 DType::kI32, DType::kI16, DType::kI8,   DType::kU8,  DType::kBool};
  const std::vector<DType> numeric{DType::kF32, DType::kF16, DType::kBF16, DType::kI64,
                                   DType::kI32};
  add_generated(r, "full", plain, [](KernelArgs& a) { fill(a, "full", NAN); });
  add_generated(r, "zeros", plain, [](KernelArgs& a) { fill(a, "zeros", 0.0); });
  add_generated(r, "ones", plain, [](KernelArgs& a) { fill(a, "ones", 1.0); });
  add_generated(r, "eye", plain, eye);
  add_generated(r, "arange", numeric, arange);
  add_generated(r, "linspace", numeric, linspace, float_ramp_supports);
  add_generated(r, "rand", kGenFloats, [](KernelArgs& a) { random(a, Kind::kUniform); });
  add_generated(r, "randn", kGenFloats, [](KernelArgs& a) { random(a, Kind::kNormal); });
  add_generated(r, "randint", numeric, [](KernelArgs& a) { random(a, Kind::kInteger); });
}

}  // namespace flagstone::ops::gen
