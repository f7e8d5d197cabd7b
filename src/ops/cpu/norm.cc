// cpu native row-wise kernels: softmax / log_softmax over the last dim, rms_norm, layer_norm and
// fused add + rms_norm. One row per task chunk; f32 statistics; f16/bf16 widened in registers.
#include <cmath>

#include "cpu/cpu_common.h"
#include "cpu/simd.h"
#include "cpu/simd512.h"
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
// `MayBeNaN` false when the row's sum is not NaN: then no stored exponential is NaN (a NaN
// input makes the sum NaN) and the bf16 stores skip their NaN test.
template <bool Stream, bool MayBeNaN, typename T>
FS_AVX2 inline void scale_chunk16(const float* e, T* o, int64_t b, int64_t end, float f,
                                  int64_t phase) {
  __m256 vf = _mm256_set1_ps(f);
  int64_t i = b;
  for (; i < std::min(end, b + phase); ++i) o[i] = store_f<T>(e[i] * f);
  for (; i + 16 <= end; i += 16)
    simd::put16<Stream, T, MayBeNaN>(o + i, _mm256_mul_ps(_mm256_loadu_ps(e + i), vf),
                                     _mm256_mul_ps(_mm256_loadu_ps(e + i + 8), vf));
  for (; i < end; ++i) o[i] = store_f<T>(e[i] * f);
}

// scale_chunk16 for exponentials stored by the AVX-512 sweep (chunk_sum_pow2 with
// has_avx512()): 32-element blocks while they fit, then 16-element ones, as they were stored.
// With `Stream` the blocks start 64-byte aligned (the row's phase is taken for that).
template <bool Stream, bool MayBeNaN, typename T>
FS_AVX512 void scale_chunk512(const float* e, T* o, int64_t b, int64_t end, float f,
                              int64_t phase) {
  const __m512 vf = _mm512_set1_ps(f);
  int64_t i = b;
  for (; i < std::min(end, b + phase); ++i) o[i] = store_f<T>(e[i] * f);
  for (; i + 32 <= end; i += 32)
    simd::put32<Stream, T, MayBeNaN>(o + i, _mm512_mul_ps(_mm512_loadu_ps(e + i), vf),
                                     _mm512_mul_ps(_mm512_loadu_ps(e + i + 16), vf));
  scale_chunk16<Stream, MayBeNaN>(e, o, i, end, f, 0);
}

// softmax of one row with one exp per element, reading it from memory once: chunk by chunk,
// exp(x - running shift) goes to a scratch row `e` (n floats, warm in L2) with the shift used for
// each chunk in `shifts`; the output pass scales chunk k by exp(shift_k - max) / sum. Both passes
// share one grid of 16-element blocks, aligned for the streamed stores (chunks are multiples of
// 32 bytes, so one phase serves every chunk). The passes are split per chunk so that a thread
// runs the output pass of one row between the chunks of the next row's first pass: memory then
// streams the next row in and this one out while the arithmetic runs, where a row's output pass
// alone leaves the arithmetic idle and its first pass the writes.
//
// f16/bf16 rows shift by whole multiples of ln2 (softmax_rows.h), f32 rows by the running max
// (row_stats16); a 16-bit row whose values leave the ln2 shifts' range takes the f32 path.
template <typename T>
struct SoftmaxRow {
  static constexpr int64_t C = kStatChunk<T>;
  // Bytes the first pass prefetches ahead of its loads (the hardware prefetcher alone let the
  // first pass wait on memory between its bursts).
  static constexpr int kAhead = 1024;
  const T* x = nullptr;
  int64_t n = 0, phase = 0;
  float* e = nullptr;
  float* shifts = nullptr;
  bool pow2 = false, failed = false;
  simd::Pow2Sum p2;
  float m = -INFINITY, sum = 0;  // the f32 path's running max and sum
  float top = 0, inv = 0;        // after end(): the final shift and 1 / sum

  int64_t chunks() const { return (n + C - 1) / C; }

  void begin(const T* xr, int64_t len, float* scratch, int64_t ph) {
    x = xr, n = len, e = scratch, shifts = scratch + len, phase = ph;
    pow2 = !std::is_same_v<T, float>, failed = false;
    p2 = {}, m = -INFINITY, sum = 0;
  }

  FS_AVX2 void stats(int64_t k) {
    const int64_t b = k * C, len = std::min(C, n - b);
    if (pow2) {
      if (!failed && !simd::pow2_chunk<T>(p2, x + b, len, e + b, phase, shifts + k, kAhead))
        failed = true;
      return;
    }
    if (m == -INFINITY) {
      m = simd::first_shift(x + b, len);
      if (m == -INFINITY) {  // nothing finite yet: this chunk is redone from x in out()
        shifts[k] = m;
        if (std::isnan(simd::chunk_sum16(x + b, len))) sum = NAN;
        return;
      }
    }
    float cm;
    float part = simd::chunk_sum_exp16(x + b, len, m, cm, e + b, phase, kAhead);
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

  // After every stats(k). A 16-bit row that left the ln2 shifts (or held nothing finite, whose
  // NaN result the f32 path gives as torch does) is redone on the f32 path.
  FS_AVX2 void end() {
    if (pow2 && (failed || p2.k == -INFINITY)) {
      pow2 = false;
      for (int64_t k = 0; k < chunks(); ++k) stats(k);
    }
    top = pow2 ? p2.k : m;
    inv = 1.0f / (pow2 ? p2.sum : sum);
  }

  template <bool Stream>
  FS_AVX2 void out(T* o, int64_t k) const {
    const int64_t b = k * C, end = std::min(n, b + C);
    // The shift of a chunk lies below the row's, by less than 80 (115 ln2) where the scale
    // stays a normal float (the chunk's exponentials may exceed 1 by up to exp(kMaxLead)).
    float d = shifts[k] - top;
    if (pow2 ? d >= -115.0f : d >= -80.0f) {
      float f = pow2 ? std::ldexp(inv, static_cast<int>(d)) : exp_f32(d) * inv;
      // The 16-bit rows' exponentials come from chunk_sum_pow2, on its block grid.
      const bool wide = pow2 && has_avx512();
      if (std::isnan(inv))
        wide ? scale_chunk512<Stream, true>(e, o, b, end, f, phase)
             : scale_chunk16<Stream, true>(e, o, b, end, f, phase);
      else
        wide ? scale_chunk512<Stream, false>(e, o, b, end, f, phase)
             : scale_chunk16<Stream, false>(e, o, b, end, f, phase);
      return;
    }
    // Else from x: a chunk of -inf (and NaN) gives 0 (NaN) against a finite max, and NaN
    // everywhere when the whole row is -inf, as torch gives; a chunk far below a later max
    // gives its exponentials directly.
    float shift = pow2 ? static_cast<float>(top * simd::kLn2) : top;
    __m256 vm = _mm256_set1_ps(shift), vi = _mm256_set1_ps(inv);
    int64_t i = b;
    for (; i + 8 <= end; i += 8)
      simd::store8(o + i, _mm256_mul_ps(simd::exp8(_mm256_sub_ps(simd::load8(x + i), vm)), vi));
    for (; i < end; ++i) o[i] = store_f<T>(exp_f32(load_f(x[i]) - shift) * inv);
  }
};

// softmax of rows [b, e), each row's output pass run between the chunks of the next row's first
// pass. `scratch` holds two rows' exponentials and shifts.
template <bool Stream, typename T>
FS_AVX2 void softmax_rows_avx2(const T* px, T* po, int64_t n, int64_t b, int64_t e,
                               float* scratch) {
  const int64_t chunks = (n + kStatChunk<T> - 1) / kStatChunk<T>;
  SoftmaxRow<T> rows[2];
  for (int64_t r = b; r < e; ++r) {
    SoftmaxRow<T>& cur = rows[(r - b) & 1];
    const SoftmaxRow<T>& prev = rows[(r - b + 1) & 1];
    T* prev_out = po + (r - 1) * n;
    // 64-byte aligned blocks for the AVX-512 stores (which keeps them 32-byte aligned for AVX2).
    const int64_t phase = !Stream        ? 0
                          : has_avx512() ? simd::aligned_head64(po + r * n, n)
                                         : simd::aligned_head(po + r * n, n);
    cur.begin(px + r * n, n, scratch + ((r - b) & 1) * (n + chunks), phase);
    for (int64_t k = 0; k < chunks; ++k) {
      cur.stats(k);
      if (r > b) prev.template out<Stream>(prev_out, k);
    }
    cur.end();
  }
  if (e > b)
    for (int64_t k = 0; k < chunks; ++k)
      rows[(e - 1 - b) & 1].template out<Stream>(po + (e - 1) * n, k);
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
// w and b are either of the row's dtype (P = T) or widened to f32 once per task (P = float, see
// WideParams), which spares a bf16 row two conversions per step.
template <bool Stream, typename T, typename P>
FS_AVX2 void scale_row16(const T* x, T* o, int64_t n, float shift, float scale, const P* w,
                         const P* b, const T* next) {
  auto one = [&](int64_t i) {
    float v = (load_f(x[i]) - shift) * scale;
    if (w) v *= load_f(w[i]);
    if (b) v += load_f(b[i]);
    o[i] = store_f<T>(v);
  };
  __m256 vs = _mm256_set1_ps(scale), vsh = _mm256_set1_ps(shift), u, v, p, q, c, d;
  int64_t i = 0;
  if constexpr (Stream)
    for (int64_t h = simd::aligned_head(o, n); i < h; ++i) one(i);
  for (; i + 16 <= n; i += 16) {
    if (next) _mm_prefetch(reinterpret_cast<const char*>(next + i), _MM_HINT_T1);
    simd::load16(x + i, u, v);
    u = _mm256_mul_ps(_mm256_sub_ps(u, vsh), vs), v = _mm256_mul_ps(_mm256_sub_ps(v, vsh), vs);
    if (w && b) {
      simd::load16(w + i, p, q), simd::load16(b + i, c, d);
      u = _mm256_fmadd_ps(u, p, c), v = _mm256_fmadd_ps(v, q, d);
    } else if (w) {
      simd::load16(w + i, p, q), u = _mm256_mul_ps(u, p), v = _mm256_mul_ps(v, q);
    } else if (b) {
      simd::load16(b + i, p, q), u = _mm256_add_ps(u, p), v = _mm256_add_ps(v, q);
    }
    simd::put16<Stream>(o + i, u, v);
  }
  for (; i < n; ++i) one(i);
}

// A bf16 norm's weight and bias widened to f32 for the rows of one task: in
// load16's lane order on the 16-element blocks that scale_row16 uses for a row whose blocks start
// `phase` elements in (the head before and the tail after in element order), so that each
// step reads them with two plain loads. Widened again when a row's phase differs (rows whose
// byte length is not a multiple of 32 start at varying alignments). Thread-local storage, so a
// call allocates nothing after the first.
template <typename T>
struct WideParams {
  const float* w = nullptr;
  const float* b = nullptr;
  int64_t phase = -1;

  FS_AVX2 void prepare(const T* pw, const T* pb, int64_t n, int64_t ph) {
    if (ph == phase) return;
    phase = ph;
    thread_local std::vector<float> store;
    store.resize(2 * static_cast<size_t>(n));
    w = pw ? widen(pw, store.data(), n, ph) : nullptr;
    b = pb ? widen(pb, store.data() + n, n, ph) : nullptr;
  }

  FS_AVX2 static const float* widen(const T* src, float* dst, int64_t n, int64_t ph) {
    int64_t i = 0;
    for (; i < std::min(ph, n); ++i) dst[i] = load_f(src[i]);
    for (; i + 16 <= n; i += 16) {
      __m256 a, c;
      simd::load16(src + i, a, c);
      _mm256_storeu_ps(dst + i, a), _mm256_storeu_ps(dst + i + 8, c);
    }
    for (; i < n; ++i) dst[i] = load_f(src[i]);
    return dst;
  }
};

// Tasks of this many rows or more widen a bf16 norm's parameters first (fewer rows, as a
// decode step's one token, would spend more on widening than the rows save). f16 rows keep
// their parameters in f16: F16C widens them cheaply, and twice the bytes of f32 parameters
// pushed the row out of L1 (one-thread A/B at 16 x 4096: 12% slower widened, bf16 7% faster).
inline constexpr int64_t kWidenRows = 4;

// rms_norm of one row, after x += residual into `sum_out` when a residual is given.
template <bool Stream, typename T, typename P>
FS_AVX2 void rms_row_avx2(const T* x, const T* res, T* sum_out, const P* w, T* o, int64_t n,
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
  scale_row16<Stream>(x, o, n, 0.0f, scale, w, static_cast<const P*>(nullptr), next);
}

template <bool Stream, typename T, typename P>
FS_AVX2 void layer_norm_row_avx2(const T* x, const P* w, const P* b, T* o, int64_t n, float eps,
                                 const T* next) {
  float mean = row_sum16<SumKind::kPlain>(x, n) / static_cast<float>(n);
  float var = row_sum16<SumKind::kCentered>(x, n, mean) / static_cast<float>(n);
  scale_row16<Stream>(x, o, n, mean, 1.0f / std::sqrt(var + eps), w, b, next);
}

// The AVX2 rows of a task: rms_norm (`layer` false, b unused) or layer_norm, with a bf16
// w and b widened first when the task has kWidenRows rows or more.
template <bool Stream, typename T>
FS_AVX2 void norm_rows_avx2(bool layer, const T* px, const T* pr, T* pro, const T* pw, const T* pb,
                            T* po, int64_t n, float eps, int64_t b, int64_t e) {
  WideParams<T> wide;
  const bool widen = std::is_same_v<T, BFloat16> && e - b >= kWidenRows;
  for (int64_t r = b; r < e; ++r) {
    const T* res = pr ? pr + r * n : nullptr;
    T* sum = pro ? pro + r * n : nullptr;
    const T* next = r + 1 < e && !pr ? px + (r + 1) * n : nullptr;
    T* o = po + r * n;
    if (widen) {
      wide.prepare(pw, pb, n, Stream ? simd::aligned_head(o, n) : 0);
      if (layer)
        layer_norm_row_avx2<Stream>(px + r * n, wide.w, wide.b, o, n, eps, next);
      else
        rms_row_avx2<Stream>(px + r * n, res, sum, wide.w, o, n, eps, next);
    } else if (layer) {
      layer_norm_row_avx2<Stream>(px + r * n, pw, pb, o, n, eps, next);
    } else {
      rms_row_avx2<Stream>(px + r * n, res, sum, pw, o, n, eps, next);
    }
  }
  if constexpr (Stream) _mm_sfence();  // streamed lines visible before the pool reports done
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
    parallel(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(n, 1)),
             [&](int64_t b, int64_t e) {
               if (log) {
                 for (int64_t r = b; r < e; ++r) {
                   if (stream)
                     log_softmax_row_avx2<true>(px + r * n, po + r * n, n);
                   else
                     log_softmax_row_avx2<false>(px + r * n, po + r * n, n);
                 }
               } else {
                 std::vector<float> spill;
                 float* scratch = thread_scratch(static_cast<size_t>(2 * (n + chunks)), spill);
                 if (stream)
                   softmax_rows_avx2<true>(px, po, n, b, e, scratch);
                 else
                   softmax_rows_avx2<false>(px, po, n, b, e, scratch);
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
               if (stream)
                 norm_rows_avx2<true, T>(false, px, pr, pro, pw, nullptr, po, n, fe, b, e);
               else
                 norm_rows_avx2<false, T>(false, px, pr, pro, pw, nullptr, po, n, fe, b, e);
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
               if (stream)
                 norm_rows_avx2<true, T>(true, px, nullptr, nullptr, pw, pb, po, n, fe, b, e);
               else
                 norm_rows_avx2<false, T>(true, px, nullptr, nullptr, pw, pb, po, n, fe, b, e);
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
