// cpu native row-wise kernels: softmax / log_softmax over the last dim, rms_norm, layer_norm and
// fused add + rms_norm. One row per task chunk; f32 statistics; f16/bf16 widened in registers.
#include <cmath>

#include "cpu/cpu_common.h"
#include "cpu/simd.h"
#include "cpu/softmax_rows.h"
#include "internal.h"

namespace flagstone::ops {
namespace cpu {
namespace {

#ifdef FS_CPU_X86
// AVX2/FMA rows (picked at run time by has_avx2): the same passes as the portable loops below,
// 16 lanes a step with several accumulators, the row staying in L1/L2 between passes.

// log_softmax of one row: the one-sweep statistics, then (x - max) - log(sum), rereading the
// row from cache (L2, or L3 for vocabulary-sized rows). In that order, as torch has it: x - max
// is exact near the max, where x - lse with lse rounded to f32 would lose the low bits of
// log(sum) against large logits.
template <bool Stream, typename T>
FS_AVX2 void log_softmax_row_avx2(const T* x, T* o, int64_t n) {
  RowStats st = simd::row_stats16(x, n, false);
  const float m = st.max, ls = std::log(st.sum);
  __m256 vm = _mm256_set1_ps(m), vl = _mm256_set1_ps(ls), a, b;
  int64_t i = 0;
  if constexpr (Stream)
    for (int64_t h = simd::aligned_head(o, n); i < h; ++i) o[i] = store_f<T>(load_f(x[i]) - m - ls);
  for (; i + 16 <= n; i += 16) {
    simd::load16(x + i, a, b);
    simd::put16<Stream>(o + i, _mm256_sub_ps(_mm256_sub_ps(a, vm), vl),
                        _mm256_sub_ps(_mm256_sub_ps(b, vm), vl));
  }
  for (; i < n; ++i) o[i] = store_f<T>(load_f(x[i]) - m - ls);
}

// o[i] = e[i] * f over [b, end), on the 16-element blocks that start `phase` elements in (those
// the exponentials were stored on).
template <bool Stream, typename T>
FS_AVX2 inline void scale_chunk16(const float* e, T* o, int64_t b, int64_t end, float f,
                                  int64_t phase) {
  __m256 vf = _mm256_set1_ps(f);
  int64_t i = b;
  for (; i < std::min(end, b + phase); ++i) o[i] = store_f<T>(e[i] * f);
  for (; i + 16 <= end; i += 16)
    simd::put16<Stream>(o + i, _mm256_mul_ps(_mm256_loadu_ps(e + i), vf),
                        _mm256_mul_ps(_mm256_loadu_ps(e + i + 8), vf));
  for (; i < end; ++i) o[i] = store_f<T>(e[i] * f);
}

// softmax of one row with one exp per element, reading it from memory once: chunk by chunk,
// exp(x - running max) goes to the thread's scratch `e` (n floats, warm in L2) with the shift
// used for each chunk in `shifts` (see row_stats16); the output pass scales chunk k by
// exp(shift_k - max) / sum. Both passes share one grid of 16-element blocks, aligned for the
// streamed stores (chunks are multiples of 32 bytes, so one phase serves every chunk).
template <bool Stream, typename T>
FS_AVX2 void softmax_row_avx2(const T* x, T* o, int64_t n, float* e, float* shifts) {
  constexpr int64_t C = kStatChunk<T>;
  const int64_t phase = Stream ? simd::aligned_head(o, n) : 0;
  float m = -INFINITY, sum = 0;
  for (int64_t b = 0, k = 0; b < n; b += C, ++k) {
    int64_t len = std::min(C, n - b);
    if (m == -INFINITY) {
      m = simd::first_shift(x + b, len);
      if (m == -INFINITY) {  // nothing finite yet: this chunk is redone from x below
        shifts[k] = m;
        if (std::isnan(simd::chunk_sum16(x + b, len))) sum = NAN;
        continue;
      }
    }
    float cm;
    float part = simd::chunk_sum_exp16(x + b, len, m, cm, e + b, phase);
    if (cm > m + simd::kMaxLead) {
      sum *= exp_f32(m - cm);
      m = cm;
      part = simd::chunk_sum_exp16(x + b, len, m, cm, e + b, phase);
    }
    shifts[k] = m;
    sum += part;
    if (cm > m) {
      sum *= exp_f32(m - cm);
      m = cm;
    }
  }
  float inv = 1.0f / sum;
  for (int64_t b = 0, k = 0; b < n; b += C, ++k) {
    int64_t end = std::min(n, b + C);
    // The shift of a chunk lies below the row's max, by less than 80 where the scale stays a
    // normal float (the chunk's exponentials may exceed 1 by up to exp(kMaxLead)).
    if (shifts[k] - m >= -80.0f) {
      scale_chunk16<Stream>(e, o, b, end, exp_f32(shifts[k] - m) * inv, phase);
      continue;
    }
    // Else from x: a chunk of -inf (and NaN) gives 0 (NaN) against a finite max, and NaN
    // everywhere when the whole row is -inf, as torch gives; a chunk far below a later max
    // gives its exponentials directly.
    __m256 vm = _mm256_set1_ps(m), vi = _mm256_set1_ps(inv);
    int64_t i = b;
    for (; i + 8 <= end; i += 8)
      simd::store8(o + i, _mm256_mul_ps(simd::exp8(_mm256_sub_ps(simd::load8(x + i), vm)), vi));
    for (; i < end; ++i) o[i] = store_f<T>(exp_f32(load_f(x[i]) - m) * inv);
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
FS_AVX2 float row_sum16(const T* x, int64_t n, float c = 0) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, vc = _mm256_set1_ps(c), u, v, w, z;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    simd::load16(x + i, u, v), simd::load16(x + i + 16, w, z);
    a0 = sum_step<K>(u, a0, vc), a1 = sum_step<K>(v, a1, vc);
    a2 = sum_step<K>(w, a2, vc), a3 = sum_step<K>(z, a3, vc);
  }
  for (; i + 16 <= n; i += 16) {
    simd::load16(x + i, u, v);
    a0 = sum_step<K>(u, a0, vc), a1 = sum_step<K>(v, a1, vc);
  }
  float s = simd::hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  for (; i < n; ++i) {
    float v1 = load_f(x[i]);
    if constexpr (K == SumKind::kPlain) s += v1;
    if constexpr (K == SumKind::kCentered) v1 -= c;
    if constexpr (K != SumKind::kPlain) s += v1 * v1;
  }
  return s;
}

// o = (x - shift) * scale * w + b, with w and b optional; streaming stores when `Stream`. The
// row `next` (when given) is prefetched into L2 meanwhile, at this row's pace: the next row's
// reduction pass then reads from L2 while this one computes, rather than waiting on memory or
// L3 after it (the hardware prefetcher loses the stream while a row is read twice).
template <bool Stream, typename T>
FS_AVX2 void scale_row16(const T* x, T* o, int64_t n, float shift, float scale, const T* w,
                         const T* b, const T* next) {
  auto one = [&](int64_t i) {
    float v = (load_f(x[i]) - shift) * scale;
    if (w) v *= load_f(w[i]);
    if (b) v += load_f(b[i]);
    o[i] = store_f<T>(v);
  };
  __m256 vs = _mm256_set1_ps(scale), vsh = _mm256_set1_ps(shift), u, v, p, q;
  int64_t i = 0;
  if constexpr (Stream)
    for (int64_t h = simd::aligned_head(o, n); i < h; ++i) one(i);
  for (; i + 16 <= n; i += 16) {
    if (next) _mm_prefetch(reinterpret_cast<const char*>(next + i), _MM_HINT_T1);
    simd::load16(x + i, u, v);
    u = _mm256_mul_ps(_mm256_sub_ps(u, vsh), vs), v = _mm256_mul_ps(_mm256_sub_ps(v, vsh), vs);
    if (w) simd::load16(w + i, p, q), u = _mm256_mul_ps(u, p), v = _mm256_mul_ps(v, q);
    if (b) simd::load16(b + i, p, q), u = _mm256_add_ps(u, p), v = _mm256_add_ps(v, q);
    simd::put16<Stream>(o + i, u, v);
  }
  for (; i < n; ++i) one(i);
}

// rms_norm of one row, after x += residual into `sum_out` when a residual is given.
template <bool Stream, typename T>
FS_AVX2 void rms_row_avx2(const T* x, const T* res, T* sum_out, const T* w, T* o, int64_t n,
                          float eps, const T* next) {
  if (res) {
    __m256 a, b, c, d;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
      simd::load16(x + i, a, b), simd::load16(res + i, c, d);
      simd::store16(sum_out + i, _mm256_add_ps(a, c), _mm256_add_ps(b, d));
    }
    for (; i < n; ++i) sum_out[i] = store_f<T>(load_f(x[i]) + load_f(res[i]));
    x = sum_out;  // the rounded sum, as the residual stream keeps it
  }
  float ss = row_sum16<SumKind::kSquares>(x, n);
  float scale = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
  scale_row16<Stream>(x, o, n, 0.0f, scale, w, static_cast<const T*>(nullptr), next);
}

template <bool Stream, typename T>
FS_AVX2 void layer_norm_row_avx2(const T* x, const T* w, const T* b, T* o, int64_t n, float eps,
                                 const T* next) {
  float mean = row_sum16<SumKind::kPlain>(x, n) / static_cast<float>(n);
  float var = row_sum16<SumKind::kCentered>(x, n, mean) / static_cast<float>(n);
  scale_row16<Stream>(x, o, n, mean, 1.0f / std::sqrt(var + eps), w, b, next);
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
#ifdef FS_CPU_X86
  if (has_avx2()) {
    bool stream = stream_output(2 * out.nbytes());
    int64_t chunks = (n + kStatChunk<T> - 1) / kStatChunk<T>;
    parallel(
        rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(n, 1)), [&](int64_t b, int64_t e) {
          std::vector<float> spill;
          float* scratch = log ? nullptr : thread_scratch(static_cast<size_t>(n + chunks), spill);
          for (int64_t r = b; r < e; ++r) {
            const T* xr = px + r * n;
            T* orow = po + r * n;
            if (log && stream)
              log_softmax_row_avx2<true>(xr, orow, n);
            else if (log)
              log_softmax_row_avx2<false>(xr, orow, n);
            else if (stream)
              softmax_row_avx2<true>(xr, orow, n, scratch, scratch + n);
            else
              softmax_row_avx2<false>(xr, orow, n, scratch, scratch + n);
          }
          if (stream) _mm_sfence();  // streamed lines are visible before the pool reports done
        });
    return;
  }
#endif
  parallel(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(n, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const T* xr = px + r * n;
      T* orow = po + r * n;
      RowStats st = row_stats(xr, n, false);
      if (log) {
        float m = st.max, ls = std::log(st.sum);  // (x - max) - log(sum), as above
        for (int64_t i = 0; i < n; ++i) orow[i] = store_f<T>(load_f(xr[i]) - m - ls);
      } else {
        float m = st.max, inv = 1.0f / st.sum;
        for (int64_t i = 0; i < n; ++i) orow[i] = store_f<T>(exp_f32(load_f(xr[i]) - m) * inv);
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
    bool stream = stream_output(2 * out.nbytes());
    parallel(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(n, 1)),
             [&](int64_t b, int64_t e) {
               const float fe = static_cast<float>(eps);
               for (int64_t r = b; r < e; ++r) {
                 const T* res = pr ? pr + r * n : nullptr;
                 T* sum = pro ? pro + r * n : nullptr;
                 const T* next = r + 1 < e && !pr ? px + (r + 1) * n : nullptr;
                 if (stream)
                   rms_row_avx2<true>(px + r * n, res, sum, pw, po + r * n, n, fe, next);
                 else
                   rms_row_avx2<false>(px + r * n, res, sum, pw, po + r * n, n, fe, next);
               }
               if (stream) _mm_sfence();
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
    bool stream = stream_output(2 * out.nbytes());
    parallel(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(n, 1)),
             [&](int64_t b, int64_t e) {
               const float fe = static_cast<float>(eps);
               for (int64_t r = b; r < e; ++r) {
                 const T* next = r + 1 < e ? px + (r + 1) * n : nullptr;
                 if (stream)
                   layer_norm_row_avx2<true>(px + r * n, pw, pb, po + r * n, n, fe, next);
                 else
                   layer_norm_row_avx2<false>(px + r * n, pw, pb, po + r * n, n, fe, next);
               }
               if (stream) _mm_sfence();
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
