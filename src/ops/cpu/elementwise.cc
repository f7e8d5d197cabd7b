// cpu native elementwise kernels: binary arithmetic and comparisons with broadcasting and any
// strides, the common unary math, and dtype casts. Rows of unit stride compile to vector loops;
// f16/bf16 are widened to f32 in registers.
#include <cmath>

#include "cpu/cpu_common.h"
#include "cpu/simd.h"
#include "flagstone/ops/dtype_rules.h"
#include "internal.h"

namespace flagstone::ops {
namespace cpu {
namespace {

// One strided row: out[i] = f(a[i], b[i]). Separate unit-stride and broadcast cases let the
// compiler vectorize the common shapes.
template <typename TI, typename TO, typename F>
void binary_row(TO* out, int64_t so, const TI* a, int64_t sa, const TI* b, int64_t sb, int64_t n,
                F f) {
  if (so == 1 && sa == 1 && sb == 1) {
    for (int64_t i = 0; i < n; ++i) out[i] = f(a[i], b[i]);
  } else if (so == 1 && sa == 1 && sb == 0) {
    const TI bv = b[0];
    for (int64_t i = 0; i < n; ++i) out[i] = f(a[i], bv);
  } else if (so == 1 && sa == 0 && sb == 1) {
    const TI av = a[0];
    for (int64_t i = 0; i < n; ++i) out[i] = f(av, b[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) out[i * so] = f(a[i * sa], b[i * sb]);
  }
}

template <typename TI, typename TO, typename F>
void run_binary(const Tensor& a, const Tensor& b, const Tensor& out, F f) {
  RowPlan plan = plan_rows(out.shape(), {out.strides(), broadcast_strides(a, out.shape()),
                                         broadcast_strides(b, out.shape())});
  TO* po = ptr<TO>(out);
  const TI* pa = ptr<const TI>(a);
  const TI* pb = ptr<const TI>(b);
  const int64_t so = plan.inner_stride[0], sa = plan.inner_stride[1], sb = plan.inner_stride[2];
  parallel_rows(plan.rows, plan.row_length, 32768, [&](int64_t r, int64_t lo, int64_t hi) {
    binary_row(po + plan.offsets[0][r] + lo * so, so, pa + plan.offsets[1][r] + lo * sa, sa,
               pb + plan.offsets[2][r] + lo * sb, sb, hi - lo, f);
  });
}

// Float ops compute in f32 (f64 in f64) and round once when storing.
template <typename T, typename F>
void float_binary(const Tensor& a, const Tensor& b, const Tensor& out, F f) {
  using C = std::conditional_t<std::is_same_v<T, double>, double, float>;
  run_binary<T, T>(a, b, out, [f](T x, T y) {
    return store_f<T>(f(static_cast<C>(load_f(x)), static_cast<C>(load_f(y))));
  });
}

template <typename T, typename F>
void float_compare(const Tensor& a, const Tensor& b, const Tensor& out, F f) {
  run_binary<T, bool>(a, b, out, [f](T x, T y) { return f(load_f(x), load_f(y)); });
}

#ifdef FS_CPU_X86
// The float arithmetic ops with an AVX2 row: f16/bf16 widened and narrowed 16 lanes a step in
// registers (the portable loop converts element by element, about half the speed per byte).
enum class Arith { kAdd, kSub, kMul, kDiv };

template <Arith A>
FS_AVX2 inline __m256 arith8(__m256 x, __m256 y, __m256 alpha) {
  if constexpr (A == Arith::kAdd) return _mm256_fmadd_ps(alpha, y, x);
  if constexpr (A == Arith::kSub) return _mm256_fnmadd_ps(alpha, y, x);
  if constexpr (A == Arith::kMul) return _mm256_mul_ps(x, y);
  return _mm256_div_ps(x, y);
}

// One element, the tails' and strided rows' form; alpha * y in double like the FMA of the lanes
// (no rounding before the add).
template <Arith A>
inline float arith1(float x, float y, float alpha) {
  if constexpr (A == Arith::kAdd) return static_cast<float>(x + static_cast<double>(alpha) * y);
  if constexpr (A == Arith::kSub) return static_cast<float>(x - static_cast<double>(alpha) * y);
  if constexpr (A == Arith::kMul) return x * y;
  return x / y;
}

// out = a (op) b over n elements of unit stride; b is one broadcast value when `b_scalar`.
// `Stream`: non-temporal stores from the output's first 32-byte boundary.
template <bool Stream, Arith A, typename T>
FS_AVX2 void arith_row_avx2(T* o, const T* a, const T* b, bool b_scalar, int64_t n, float alpha) {
  const __m256 va = _mm256_set1_ps(alpha);
  const float bs = b_scalar ? load_f(b[0]) : 0.0f;
  const __m256 vb = _mm256_set1_ps(bs);
  auto one = [&](int64_t i) {
    o[i] = store_f<T>(arith1<A>(load_f(a[i]), b_scalar ? bs : load_f(b[i]), alpha));
  };
  __m256 x0, x1, y0 = vb, y1 = vb;
  int64_t i = 0;
  if constexpr (Stream)
    for (int64_t h = simd::aligned_head(o, n); i < h; ++i) one(i);
  for (; i + 16 <= n; i += 16) {
    simd::load16(a + i, x0, x1);
    if (!b_scalar) simd::load16(b + i, y0, y1);
    simd::put16<Stream>(o + i, arith8<A>(x0, y0, va), arith8<A>(x1, y1, va));
  }
  for (; i < n; ++i) one(i);
  if constexpr (Stream) _mm_sfence();  // streamed lines visible before the pool reports done
}

// add/sub/mul/div of f32/f16/bf16 tensors: unit-stride rows (b dense or broadcast along the row)
// take the AVX2 row, any other stride pattern the portable one.
template <Arith A, typename T>
void arith_avx2(const Tensor& a, const Tensor& b, const Tensor& out, float alpha) {
  RowPlan plan = plan_rows(out.shape(), {out.strides(), broadcast_strides(a, out.shape()),
                                         broadcast_strides(b, out.shape())});
  T* po = ptr<T>(out);
  const T* pa = ptr<const T>(a);
  const T* pb = ptr<const T>(b);
  const int64_t so = plan.inner_stride[0], sa = plan.inner_stride[1], sb = plan.inner_stride[2];
  const bool vector = so == 1 && sa == 1 && (sb == 1 || sb == 0);
  const bool stream = stream_output(a.nbytes() + b.nbytes() + out.nbytes());
  parallel_rows(plan.rows, plan.row_length, 32768, [&](int64_t r, int64_t lo, int64_t hi) {
    T* o = po + plan.offsets[0][r] + lo * so;
    const T* x = pa + plan.offsets[1][r] + lo * sa;
    const T* y = pb + plan.offsets[2][r] + lo * sb;
    if (vector && stream)
      arith_row_avx2<true, A>(o, x, y, sb == 0, hi - lo, alpha);
    else if (vector)
      arith_row_avx2<false, A>(o, x, y, sb == 0, hi - lo, alpha);
    else
      binary_row(o, so, x, sa, y, sb, hi - lo,
                 [alpha](T p, T q) { return store_f<T>(arith1<A>(load_f(p), load_f(q), alpha)); });
  });
}
#endif

struct BinarySpec {
  const char* name;
  bool compare;
};

// Casts inputs to the computation dtype first (result_type), as torch does.
std::pair<Tensor, Tensor> promoted(const KernelArgs& args) {
  DType c = result_type({args.inputs[0], args.inputs[1]});
  return {as_dtype(args.inputs[0], c), as_dtype(args.inputs[1], c)};
}

template <typename T>
void arith(std::string_view op, const Tensor& a, const Tensor& b, const Tensor& out, double alpha) {
  if constexpr (std::is_integral_v<T>) {
    using U = std::make_unsigned_t<T>;
    if (op == "add") {
      U al = static_cast<U>(static_cast<int64_t>(alpha));
      run_binary<T, T>(a, b, out, [al](T x, T y) {
        return static_cast<T>(static_cast<U>(x) + al * static_cast<U>(y));
      });
    } else if (op == "sub") {
      U al = static_cast<U>(static_cast<int64_t>(alpha));
      run_binary<T, T>(a, b, out, [al](T x, T y) {
        return static_cast<T>(static_cast<U>(x) - al * static_cast<U>(y));
      });
    } else if (op == "mul") {
      run_binary<T, T>(a, b, out, [](T x, T y) {
        return static_cast<T>(static_cast<U>(x) * static_cast<U>(y));
      });
    } else if (op == "maximum") {
      run_binary<T, T>(a, b, out, [](T x, T y) { return x > y ? x : y; });
    } else {
      run_binary<T, T>(a, b, out, [](T x, T y) { return x < y ? x : y; });
    }
  } else {
    using C = std::conditional_t<std::is_same_v<T, double>, double, float>;
#ifdef FS_CPU_X86
    if constexpr (!std::is_same_v<T, double>) {
      if (has_avx2() && (op == "add" || op == "sub" || op == "mul" || op == "div")) {
        const float al = static_cast<float>(alpha);
        if (op == "add")
          arith_avx2<Arith::kAdd, T>(a, b, out, al);
        else if (op == "sub")
          arith_avx2<Arith::kSub, T>(a, b, out, al);
        else if (op == "mul")
          arith_avx2<Arith::kMul, T>(a, b, out, al);
        else
          arith_avx2<Arith::kDiv, T>(a, b, out, al);
        return;
      }
    }
#endif
    // With alpha, alpha * y in double as the reference has it: no f32 overflow before the add.
    if (op == "add") {
      if (alpha == 1)
        float_binary<T>(a, b, out, [](C x, C y) { return x + y; });
      else
        float_binary<T>(a, b, out, [alpha](C x, C y) { return static_cast<C>(x + alpha * y); });
    } else if (op == "sub") {
      if (alpha == 1)
        float_binary<T>(a, b, out, [](C x, C y) { return x - y; });
      else
        float_binary<T>(a, b, out, [alpha](C x, C y) { return static_cast<C>(x - alpha * y); });
    } else if (op == "mul") {
      float_binary<T>(a, b, out, [](C x, C y) { return x * y; });
    } else if (op == "div") {
      float_binary<T>(a, b, out, [](C x, C y) { return x / y; });
    } else if (op == "maximum") {
      float_binary<T>(a, b, out,
                      [](C x, C y) { return (x != x || y != y) ? x + y : (x > y ? x : y); });
    } else {
      float_binary<T>(a, b, out,
                      [](C x, C y) { return (x != x || y != y) ? x + y : (x < y ? x : y); });
    }
  }
}

template <typename T>
void comparison(std::string_view op, const Tensor& a, const Tensor& b, const Tensor& out) {
  auto run = [&](auto f) {
    if constexpr (std::is_integral_v<T>)
      run_binary<T, bool>(a, b, out, f);
    else
      float_compare<T>(a, b, out, f);
  };
  if (op == "eq")
    run([](auto x, auto y) { return x == y; });
  else if (op == "ne")
    run([](auto x, auto y) { return x != y; });
  else if (op == "lt")
    run([](auto x, auto y) { return x < y; });
  else if (op == "le")
    run([](auto x, auto y) { return x <= y; });
  else if (op == "gt")
    run([](auto x, auto y) { return x > y; });
  else
    run([](auto x, auto y) { return x >= y; });
}

template <typename F>
void dispatch_numeric(DType d, F&& f) {
  switch (d) {
    case DType::kI64:
      f.template operator()<int64_t>();
      return;
    case DType::kI32:
      f.template operator()<int32_t>();
      return;
    case DType::kI16:
      f.template operator()<int16_t>();
      return;
    case DType::kI8:
      f.template operator()<int8_t>();
      return;
    case DType::kU8:
      f.template operator()<uint8_t>();
      return;
    default:
      dispatch_float(d, f);
  }
}

const std::vector<DType> kFloats{DType::kF32, DType::kF16, DType::kBF16, DType::kF64};
const std::vector<DType> kNumeric{DType::kF32, DType::kF16, DType::kBF16, DType::kF64, DType::kI64,
                                  DType::kI32, DType::kI16, DType::kI8,   DType::kU8};

// Unary float math on rows (input and output may have different strides).
template <typename T, typename F>
void unary_float(const Tensor& x, const Tensor& out, F f) {
  RowPlan plan = plan_rows(out.shape(), {out.strides(), x.strides()});
  T* po = ptr<T>(out);
  const T* px = ptr<const T>(x);
  const int64_t so = plan.inner_stride[0], si = plan.inner_stride[1];
  parallel_rows(plan.rows, plan.row_length, 16384, [&](int64_t r, int64_t lo, int64_t hi) {
    T* o = po + plan.offsets[0][r] + lo * so;
    const T* i = px + plan.offsets[1][r] + lo * si;
    int64_t n = hi - lo;
    if (so == 1 && si == 1) {
      for (int64_t k = 0; k < n; ++k) o[k] = store_f<T>(f(load_f(i[k])));
    } else {
      for (int64_t k = 0; k < n; ++k) o[k * so] = store_f<T>(f(load_f(i[k * si])));
    }
  });
}

using UnaryFn = float (*)(float);
struct UnarySpec {
  const char* name;
  UnaryFn f;
};
inline float sigmoidf(float x) {
  return 1.0f / (1.0f + std::exp(-x));
}
const UnarySpec kUnary[] = {
    {"abs", [](float x) { return std::fabs(x); }},
    {"neg", [](float x) { return -x; }},
    {"exp", [](float x) { return std::exp(x); }},
    {"log", [](float x) { return std::log(x); }},
    {"sqrt", [](float x) { return std::sqrt(x); }},
    {"rsqrt", [](float x) { return 1.0f / std::sqrt(x); }},
    {"reciprocal", [](float x) { return 1.0f / x; }},
    {"sin", [](float x) { return std::sin(x); }},
    {"cos", [](float x) { return std::cos(x); }},
    {"tanh", [](float x) { return std::tanh(x); }},
    {"sigmoid", sigmoidf},
    {"relu", [](float x) { return x != x ? x : (x > 0 ? x : 0.0f); }},
    {"silu", [](float x) { return x * sigmoidf(x); }},
    {"floor", [](float x) { return std::floor(x); }},
    {"ceil", [](float x) { return std::ceil(x); }},
    {"trunc", [](float x) { return std::trunc(x); }},
};

float gelu_erf(float x) {
  return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f));
}
float gelu_tanh(float x) {
  return 0.5f * x * (1.0f + std::tanh(0.7978845608028654f * (x + 0.044715f * x * x * x)));
}

// Casts between any two plain dtypes: floats through f32/f64, integers exactly.
template <typename From, typename To>
To convert(From v) {
  if constexpr (std::is_same_v<To, bool>) {
    if constexpr (std::is_floating_point_v<From> || std::is_same_v<From, Half> ||
                  std::is_same_v<From, BFloat16>)
      return load_f(v) != 0;
    else
      return v != 0;
  } else if constexpr (std::is_same_v<To, Half> || std::is_same_v<To, BFloat16>) {
    if constexpr (std::is_same_v<From, double>)
      return store_f<To>(static_cast<float>(v));
    else if constexpr (std::is_same_v<From, Half> || std::is_same_v<From, BFloat16>)
      return store_f<To>(load_f(v));
    else
      return store_f<To>(static_cast<float>(v));
  } else if constexpr (std::is_floating_point_v<To>) {
    if constexpr (std::is_same_v<From, Half> || std::is_same_v<From, BFloat16>)
      return static_cast<To>(load_f(v));
    else
      return static_cast<To>(v);
  } else {
    // To an integer: floats truncate through int64 as the reference does (NaN, huge -> INT64_MIN).
    if constexpr (std::is_integral_v<From>) {
      return static_cast<To>(v);
    } else {
      double d = static_cast<double>(load_f(v));
      if constexpr (std::is_same_v<From, double>) d = v;
      int64_t i = (d > -9.2233720368547758e18 && d < 9.2233720368547758e18)
                      ? static_cast<int64_t>(d)
                      : INT64_MIN;
      return static_cast<To>(i);
    }
  }
}

template <typename F>
void dispatch_plain(DType d, F&& f) {
  if (d == DType::kBool) {
    f.template operator()<bool>();
    return;
  }
  dispatch_numeric(d, f);
}

void cast_kernel(KernelArgs& args) {
  const Tensor& x = args.inputs[0];
  const Tensor& out = args.outputs[0];
  dispatch_plain(x.dtype(), [&]<typename From>() {
    dispatch_plain(out.dtype(), [&]<typename To>() {
      RowPlan plan = plan_rows(out.shape(), {out.strides(), x.strides()});
      To* po = ptr<To>(out);
      const From* px = ptr<const From>(x);
      const int64_t so = plan.inner_stride[0], si = plan.inner_stride[1];
      parallel_rows(plan.rows, plan.row_length, 32768, [&](int64_t r, int64_t lo, int64_t hi) {
        To* o = po + plan.offsets[0][r] + lo * so;
        const From* i = px + plan.offsets[1][r] + lo * si;
        if (so == 1 && si == 1) {
          for (int64_t k = 0; k < hi - lo; ++k) o[k] = convert<From, To>(i[k]);
        } else {
          for (int64_t k = 0; k < hi - lo; ++k) o[k * so] = convert<From, To>(i[k * si]);
        }
      });
    });
  });
}

}  // namespace
}  // namespace cpu

void register_cpu_elementwise(Registry& r) {
  using namespace cpu;
  for (const char* op : {"add", "sub", "mul", "maximum", "minimum"}) {
    std::string name = op;
    add_native(r, name, kNumeric, [name](KernelArgs& args) {
      auto ab = promoted(args);
      const Tensor &a = ab.first, &b = ab.second;
      double alpha = args.attrs.get_double("alpha", 1.0);
      dispatch_numeric(a.dtype(),
                       [&]<typename T>() { arith<T>(name, a, b, args.outputs[0], alpha); });
    });
  }
  add_native(
      r, "div", kFloats,
      [](KernelArgs& args) {
        auto ab = promoted(args);
        const Tensor &a = ab.first, &b = ab.second;
        dispatch_float(a.dtype(),
                       [&]<typename T>() { arith<T>("div", a, b, args.outputs[0], 1.0); });
      },
      true,
      [](const KernelArgs& args) {
        bool plain = args.attrs.get_string("rounding_mode", "none") == "none" &&
                     is_floating(result_type({args.inputs[0], args.inputs[1]}));
        return plain ? std::string()
                     : std::string("rounding modes and integer division run in the reference");
      });
  for (const char* op : {"eq", "ne", "lt", "le", "gt", "ge"}) {
    std::string name = op;
    add_native(r, name, kNumeric, [name](KernelArgs& args) {
      auto ab = promoted(args);
      const Tensor &a = ab.first, &b = ab.second;
      dispatch_numeric(a.dtype(),
                       [&]<typename T>() { comparison<T>(name, a, b, args.outputs[0]); });
    });
  }
  for (const UnarySpec& spec : kUnary) {
    UnaryFn f = spec.f;
    add_native(
        r, spec.name, kFloats,
        [f](KernelArgs& args) {
          dispatch_float(args.inputs[0].dtype(), [&]<typename T>() {
            if constexpr (std::is_same_v<T, double>) {
              throw_error(ErrorCategory::kUnsupported, "f64 runs in the reference");
            } else {
              unary_float<T>(args.inputs[0], args.outputs[0], f);
            }
          });
        },
        true,
        [](const KernelArgs& args) {
          return args.inputs[0].dtype() == DType::kF64 ? std::string("f64 runs in the reference")
                                                       : std::string();
        });
  }
  add_native(r, "gelu", {DType::kF32, DType::kF16, DType::kBF16}, [](KernelArgs& args) {
    bool tanh_approx = args.attrs.get_string("approximate", "none") == "tanh";
    dispatch_float(args.inputs[0].dtype(), [&]<typename T>() {
      if constexpr (!std::is_same_v<T, double>)
        unary_float<T>(args.inputs[0], args.outputs[0], tanh_approx ? gelu_tanh : gelu_erf);
    });
  });
  std::vector<DType> plain = kNumeric;
  plain.push_back(DType::kBool);
  add_native(r, "cast", plain, cast_kernel);
  add_native(r, "contiguous", plain,
             [](KernelArgs& args) { args.outputs[0].copy_(args.inputs[0]); });
}

}  // namespace flagstone::ops
