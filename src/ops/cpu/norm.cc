// cpu native row-wise kernels: softmax / log_softmax over the last dim, rms_norm, layer_norm and
// fused add + rms_norm. One row per task chunk; f32 statistics; f16/bf16 widened in registers.
#include <cmath>

#include "cpu/cpu_common.h"
#include "cpu/simd.h"
#include "internal.h"

namespace flagstone::ops {
namespace cpu {
namespace {

#ifdef FS_CPU_X86
// AVX2/FMA rows (picked at run time by has_avx2): the same passes as the portable loops below,
// 8 lanes with several accumulators, the row staying in L1/L2 between passes.

// softmax / log_softmax of one row; `tmp` holds n floats for non-f32 outputs.
template <typename T>
FS_AVX2 void softmax_row_avx2(const T* x, T* o, int64_t n, bool log, float* tmp) {
  float m = simd::row_max8(x, n);
  float* e = nullptr;
  if (!log) {
    if constexpr (std::is_same_v<T, float>)
      e = o;
    else
      e = tmp;
  }
  float sum = simd::row_sum_exp8(x, n, m, e);
  int64_t i = 0;
  if (log) {
    float lse = m + std::log(sum);
    __m256 vl = _mm256_set1_ps(lse);
    for (; i + 8 <= n; i += 8) simd::store8(o + i, _mm256_sub_ps(simd::load8(x + i), vl));
    for (; i < n; ++i) o[i] = store_f<T>(load_f(x[i]) - lse);
  } else {
    float inv = 1.0f / sum;
    __m256 vi = _mm256_set1_ps(inv);
    for (; i + 8 <= n; i += 8) simd::store8(o + i, _mm256_mul_ps(_mm256_loadu_ps(e + i), vi));
    for (; i < n; ++i) o[i] = store_f<T>(e[i] * inv);
  }
}

// sum(f(x)) of a row for f(v) = v * v (squares) or v - c then squared (centered), or v.
enum class SumKind { kPlain, kSquares, kCentered };
template <SumKind K>
FS_AVX2 inline __m256 sum_step(__m256 v, __m256 acc, __m256 c) {
  if constexpr (K == SumKind::kPlain) return _mm256_add_ps(acc, v);
  if constexpr (K == SumKind::kCentered) v = _mm256_sub_ps(v, c);
  return _mm256_fmadd_ps(v, v, acc);
}
template <SumKind K, typename T>
FS_AVX2 float row_sum8(const T* x, int64_t n, float c = 0) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, vc = _mm256_set1_ps(c);
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = sum_step<K>(simd::load8(x + i), a0, vc);
    a1 = sum_step<K>(simd::load8(x + i + 8), a1, vc);
    a2 = sum_step<K>(simd::load8(x + i + 16), a2, vc);
    a3 = sum_step<K>(simd::load8(x + i + 24), a3, vc);
  }
  for (; i + 8 <= n; i += 8) a0 = sum_step<K>(simd::load8(x + i), a0, vc);
  float s = simd::hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  for (; i < n; ++i) {
    float v = load_f(x[i]);
    if constexpr (K == SumKind::kPlain) s += v;
    if constexpr (K == SumKind::kCentered) v -= c;
    if constexpr (K != SumKind::kPlain) s += v * v;
  }
  return s;
}

// o = (x - shift) * scale * w + b, with w and b optional.
template <typename T>
FS_AVX2 void scale_row8(const T* x, T* o, int64_t n, float shift, float scale, const T* w,
                        const T* b) {
  __m256 vs = _mm256_set1_ps(scale), vsh = _mm256_set1_ps(shift);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_mul_ps(_mm256_sub_ps(simd::load8(x + i), vsh), vs);
    if (w) v = _mm256_mul_ps(v, simd::load8(w + i));
    if (b) v = _mm256_add_ps(v, simd::load8(b + i));
    simd::store8(o + i, v);
  }
  for (; i < n; ++i) {
    float v = (load_f(x[i]) - shift) * scale;
    if (w) v *= load_f(w[i]);
    if (b) v += load_f(b[i]);
    o[i] = store_f<T>(v);
  }
}

// rms_norm of one row, after x += residual into `sum_out` when a residual is given.
template <typename T>
FS_AVX2 void rms_row_avx2(const T* x, const T* res, T* sum_out, const T* w, T* o, int64_t n,
                          float eps) {
  if (res) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
      simd::store8(sum_out + i, _mm256_add_ps(simd::load8(x + i), simd::load8(res + i)));
    for (; i < n; ++i) sum_out[i] = store_f<T>(load_f(x[i]) + load_f(res[i]));
    x = sum_out;  // the rounded sum, as the residual stream keeps it
  }
  float ss = row_sum8<SumKind::kSquares>(x, n);
  float scale = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
  scale_row8(x, o, n, 0.0f, scale, w, static_cast<const T*>(nullptr));
}

template <typename T>
FS_AVX2 void layer_norm_row_avx2(const T* x, const T* w, const T* b, T* o, int64_t n, float eps) {
  float mean = row_sum8<SumKind::kPlain>(x, n) / static_cast<float>(n);
  float var = row_sum8<SumKind::kCentered>(x, n, mean) / static_cast<float>(n);
  scale_row8(x, o, n, mean, 1.0f / std::sqrt(var + eps), w, b);
}
#endif

int64_t rows_of(const Tensor& t) {
  int64_t n = t.dim() == 0 ? 1 : t.shape().back();
  return n == 0 ? 0 : t.numel() / n;
}

template <typename T>
void softmax_rows(const Tensor& x, const Tensor& out, bool log) {
  int64_t n = x.dim() == 0 ? 1 : x.shape().back(), rows = rows_of(x);
  const T* px = ptr<const T>(x);
  T* po = ptr<T>(out);
  [[maybe_unused]] bool avx2 = has_avx2();
  parallel(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(n, 1)), [&](int64_t b, int64_t e) {
    std::vector<float> tmp(static_cast<size_t>(n));
    float* t = tmp.data();
    for (int64_t r = b; r < e; ++r) {
      const T* xr = px + r * n;
      T* orow = po + r * n;
#ifdef FS_CPU_X86
      if (avx2) {
        softmax_row_avx2(xr, orow, n, log, t);
        continue;
      }
#endif
      float m = row_max(xr, n);
      // A row of -inf (fully masked) has no finite max: exp(-inf - -inf) is NaN, as in torch.
      for (int64_t i = 0; i < n; ++i) t[i] = load_f(xr[i]) - m;
      if (log) {
        float lse = m + std::log(row_sum(t, n, [](float v) { return exp_f32(v); }));
        for (int64_t i = 0; i < n; ++i) orow[i] = store_f<T>(load_f(xr[i]) - lse);
      } else {
        for (int64_t i = 0; i < n; ++i) t[i] = exp_f32(t[i]);
        float inv = 1.0f / row_sum(t, n, [](float v) { return v; });
        for (int64_t i = 0; i < n; ++i) orow[i] = store_f<T>(t[i] * inv);
      }
    }
  });
}

// y = x * rsqrt(mean(x^2) + eps) * w (w optional), optionally after x += residual.
template <typename T>
void rms_rows(const Tensor& x, const Tensor& residual, const Tensor& w, const Tensor& out,
              const Tensor& residual_out, double eps) {
  int64_t n = x.shape().back(), rows = rows_of(x);
  const T* px = ptr<const T>(x);
  const T* pr = residual.defined() ? ptr<const T>(residual) : nullptr;
  const T* pw = w.defined() ? ptr<const T>(w) : nullptr;
  T* po = ptr<T>(out);
  T* pro = residual_out.defined() ? ptr<T>(residual_out) : nullptr;
#ifdef FS_CPU_X86
  if (has_avx2()) {
    parallel(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(n, 1)), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r)
        rms_row_avx2(px + r * n, pr ? pr + r * n : nullptr, pro ? pro + r * n : nullptr, pw,
                     po + r * n, n, static_cast<float>(eps));
    });
    return;
  }
#endif
  parallel(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(n, 1)), [&](int64_t b, int64_t e) {
    std::vector<float> sum(static_cast<size_t>(n));
    std::vector<float> weight(static_cast<size_t>(n), 1.0f);
    if (pw)
      for (int64_t i = 0; i < n; ++i) weight[i] = load_f(pw[i]);
    float* v = sum.data();
    const float* wf = weight.data();
    for (int64_t r = b; r < e; ++r) {
      const T* xr = px + r * n;
      T* orow = po + r * n;
      if (pr) {
        // The residual stream is kept in the tensor's dtype, so round the sum first.
        for (int64_t i = 0; i < n; ++i) {
          T rounded = store_f<T>(load_f(xr[i]) + load_f(pr[r * n + i]));
          pro[r * n + i] = rounded;
          v[i] = load_f(rounded);
        }
      } else {
        for (int64_t i = 0; i < n; ++i) v[i] = load_f(xr[i]);
      }
      float ss = row_sum(v, n, [](float a) { return a * a; });
      float scale = 1.0f / std::sqrt(ss / static_cast<float>(n) + static_cast<float>(eps));
      for (int64_t i = 0; i < n; ++i) orow[i] = store_f<T>(v[i] * scale * wf[i]);
    }
  });
}

template <typename T>
void layer_norm_rows(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& out,
                     double eps) {
  int64_t n = x.shape().back(), rows = rows_of(x);
  const T* px = ptr<const T>(x);
  const T* pw = w.defined() ? ptr<const T>(w) : nullptr;
  const T* pb = bias.defined() ? ptr<const T>(bias) : nullptr;
  T* po = ptr<T>(out);
#ifdef FS_CPU_X86
  if (has_avx2()) {
    parallel(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(n, 1)), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r)
        layer_norm_row_avx2(px + r * n, pw, pb, po + r * n, n, static_cast<float>(eps));
    });
    return;
  }
#endif
  parallel(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(n, 1)), [&](int64_t b, int64_t e) {
    // Weight and bias widened once per task, so the row loop is branch-free and vectorizes.
    std::vector<float> weight(static_cast<size_t>(n), 1.0f), shift(static_cast<size_t>(n), 0.0f);
    for (int64_t i = 0; i < n; ++i) {
      if (pw) weight[i] = load_f(pw[i]);
      if (pb) shift[i] = load_f(pb[i]);
    }
    const float* wf = weight.data();
    const float* bf = shift.data();
    for (int64_t r = b; r < e; ++r) {
      const T* xr = px + r * n;
      T* orow = po + r * n;
      float mean = row_sum(xr, n, [](float v) { return v; }) / static_cast<float>(n);
      float var = row_sum(xr, n, [mean](float v) { return (v - mean) * (v - mean); }) /
                  static_cast<float>(n);
      float rstd = 1.0f / std::sqrt(var + static_cast<float>(eps));
      for (int64_t i = 0; i < n; ++i)
        orow[i] = store_f<T>((load_f(xr[i]) - mean) * rstd * wf[i] + bf[i]);
    }
  });
}

Tensor optional_input(const KernelArgs& args, size_t i) {
  return i < args.inputs.size() ? args.inputs[i] : Tensor();
}

}  // namespace
}  // namespace cpu

void register_cpu_norm(Registry& r) {
  using namespace cpu;
  auto last_dim_only = [](const KernelArgs& args) {
    const Tensor& x = args.inputs[0];
    int64_t dim = args.attrs.get_int("dim", -1);
    bool last = x.dim() == 0 || dim == -1 || dim == x.dim() - 1;
    return last ? std::string() : std::string("the native softmax reduces the last dim only");
  };
  for (const char* op : {"softmax", "log_softmax"}) {
    bool log = std::string_view(op) == "log_softmax";
    add_native(
        r, op, kHalfAndF32,
        [log](KernelArgs& args) {
          half_or_f32(args.inputs[0].dtype(),
                      [&]<typename T>() { softmax_rows<T>(args.inputs[0], args.outputs[0], log); });
        },
        false, last_dim_only);
  }
  add_native(
      r, "rms_norm", kHalfAndF32,
      [](KernelArgs& args) {
        half_or_f32(args.inputs[0].dtype(), [&]<typename T>() {
          rms_rows<T>(args.inputs[0], Tensor(), optional_input(args, 1), args.outputs[0], Tensor(),
                      args.attrs.get_double("eps", 1e-6));
        });
      },
      false);
  add_native(
      r, "add_rms_norm", kHalfAndF32,
      [](KernelArgs& args) {
        half_or_f32(args.inputs[0].dtype(), [&]<typename T>() {
          rms_rows<T>(args.inputs[0], args.inputs[1], args.inputs[2], args.outputs[0],
                      args.outputs[1], args.attrs.get_double("eps", 1e-6));
        });
      },
      false);
  add_native(
      r, "layer_norm", kHalfAndF32,
      [](KernelArgs& args) {
        half_or_f32(args.inputs[0].dtype(), [&]<typename T>() {
          layer_norm_rows<T>(args.inputs[0], optional_input(args, 1), optional_input(args, 2),
                             args.outputs[0], args.attrs.get_double("eps", 1e-5));
        });
      },
      false,
      [](const KernelArgs& args) {
        return args.attrs.get_int("normalized_ndim", 1) == 1
                   ? std::string()
                   : std::string("the native layer_norm normalizes the last dim only");
      });
}

}  // namespace flagstone::ops
