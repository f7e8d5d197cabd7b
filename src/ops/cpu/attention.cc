// cpu native attention: scaled_dot_product_attention (causal / masked, GQA, any lengths) and
// paged decode attention. One task per (batch, head, query row); scores and the running
// softmax (max, sum) in f32, K and V rows widened from f16/bf16 as they are read.
#include <cmath>

#include "cpu/cpu_common.h"
#include "internal.h"

namespace flagstone::ops {
namespace cpu {
namespace {

// Online softmax over keys: for key j with logit s, rescales the accumulator when the max grows.
template <typename T, typename KeyFn, typename ValueFn, typename BiasFn>
void attend(const T* q, int64_t d, int64_t dv, int64_t n, float scale, KeyFn key, ValueFn value,
            BiasFn bias, T* out, std::vector<float>& qf, std::vector<float>& acc) {
  for (int64_t i = 0; i < d; ++i) qf[i] = load_f(q[i]) * scale;
  for (int64_t i = 0; i < dv; ++i) acc[i] = 0;
  float m = -INFINITY, sum = 0;
  for (int64_t j = 0; j < n; ++j) {
    float b = bias(j);
    if (b == -INFINITY) continue;
    const T* k = key(j);
    float s = 0;
    for (int64_t i = 0; i < d; ++i) s += qf[i] * load_f(k[i]);
    s += b;
    if (s > m) {
      float correction = std::exp(m - s);
      sum *= correction;
      for (int64_t i = 0; i < dv; ++i) acc[i] *= correction;
      m = s;
    }
    float p = std::exp(s - m);
    sum += p;
    const T* v = value(j);
    for (int64_t i = 0; i < dv; ++i) acc[i] += p * load_f(v[i]);
  }
  // No allowed key: NaN, as the reference (and torch) produce for a fully masked row.
  float inv = sum > 0 ? 1.0f / sum : NAN;
  for (int64_t i = 0; i < dv; ++i)
    out[i] = store_f<T>(sum > 0 ? acc[i] * inv : (n == 0 ? 0.0f : inv));
}

template <typename T>
void sdpa(KernelArgs& args) {
  const Tensor &q = args.inputs[0], &k = args.inputs[1], &v = args.inputs[2];
  Tensor mask = args.inputs.size() > 3 ? args.inputs[3] : Tensor();
  int64_t b = q.size(0), hq = q.size(1), lq = q.size(2), d = q.size(3);
  int64_t hk = k.size(1), lk = k.size(2), dv = v.size(3);
  float scale =
      static_cast<float>(args.attrs.get_double("scale", 1.0 / std::sqrt(static_cast<double>(d))));
  bool causal = args.attrs.get_bool("causal", false);
  int64_t shift =
      args.attrs.get_string("causal_alignment", "top_left") == "bottom_right" ? lk - lq : 0;
  Shape full{b, hq, lq, lk};
  Shape ms = mask.defined() ? broadcast_strides(mask, full) : Shape(4, 0);
  const T* pq = ptr<const T>(q);
  const T* pk = ptr<const T>(k);
  const T* pv = ptr<const T>(v);
  T* po = ptr<T>(args.outputs[0]);
  parallel(b * hq * lq, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> qf(static_cast<size_t>(d)), acc(static_cast<size_t>(dv));
    for (int64_t row = begin; row < end; ++row) {
      int64_t i = row % lq, h = (row / lq) % hq, bi = row / (lq * hq);
      int64_t kh = h / (hq / hk);
      const T* kbase = pk + (bi * hk + kh) * lk * d;
      const T* vbase = pv + (bi * hk + kh) * lk * dv;
      int64_t moff = bi * ms[0] + h * ms[1] + i * ms[2];
      auto bias = [&](int64_t j) -> float {
        if (causal && j > i + shift) return -INFINITY;
        if (!mask.defined()) return 0.0f;
        int64_t at = moff + j * ms[3];
        if (mask.dtype() == DType::kBool) return ptr<const bool>(mask)[at] ? 0.0f : -INFINITY;
        return load_f(ptr<const T>(mask)[at]);
      };
      attend<T>(
          pq + row * d, d, dv, lk, scale, [&](int64_t j) { return kbase + j * d; },
          [&](int64_t j) { return vbase + j * dv; }, bias, po + row * dv, qf, acc);
    }
  });
}

int64_t index_at(const Tensor& t, int64_t i) {
  return t.dtype() == DType::kI64 ? ptr<const int64_t>(t)[i] : ptr<const int32_t>(t)[i];
}

template <typename T>
void paged(KernelArgs& args) {
  const Tensor &q = args.inputs[0], &kc = args.inputs[1], &vc = args.inputs[2];
  const Tensor &bt = args.inputs[3], &sl = args.inputs[4];
  int64_t seqs = q.size(0), hq = q.size(1), d = q.size(2);
  int64_t blocks = kc.size(0), bs = kc.size(1), hk = kc.size(2), max_blocks = bt.size(1);
  float scale =
      static_cast<float>(args.attrs.get_double("scale", 1.0 / std::sqrt(static_cast<double>(d))));
  for (int64_t s = 0; s < seqs; ++s) {
    int64_t n = index_at(sl, s);
    FS_CHECK(n >= 0 && n <= max_blocks * bs, kInvalidArgument, "op 'paged_attention': seq_lens[", s,
             "]=", n, " exceeds the block table's ", max_blocks, " blocks of ", bs);
    for (int64_t j = 0; j < n; j += bs) {
      int64_t blk = index_at(bt, s * max_blocks + j / bs);
      FS_CHECK(blk >= 0 && blk < blocks, kInvalidArgument, "op 'paged_attention': block_tables[", s,
               ", ", j / bs, "]=", blk, " is outside the cache's ", blocks, " blocks");
    }
  }
  const T* pk = ptr<const T>(kc);
  const T* pv = ptr<const T>(vc);
  parallel(seqs * hq, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> qf(static_cast<size_t>(d)), acc(static_cast<size_t>(d));
    for (int64_t row = begin; row < end; ++row) {
      int64_t s = row / hq, h = row % hq, kh = h / (hq / hk);
      auto slot = [&](int64_t j) {
        return ((index_at(bt, s * max_blocks + j / bs) * bs + j % bs) * hk + kh) * d;
      };
      attend<T>(
          ptr<const T>(q) + row * d, d, d, index_at(sl, s), scale,
          [&](int64_t j) { return pk + slot(j); }, [&](int64_t j) { return pv + slot(j); },
          [](int64_t) { return 0.0f; }, ptr<T>(args.outputs[0]) + row * d, qf, acc);
    }
  });
}

}  // namespace
}  // namespace cpu

void register_cpu_attention(Registry& r) {
  using namespace cpu;
  add_native_f32_half(r, "scaled_dot_product_attention",
                      []<typename T>(KernelArgs& args) { sdpa<T>(args); });
  add_native_f32_half(r, "paged_attention", []<typename T>(KernelArgs& args) { paged<T>(args); });
}

}  // namespace flagstone::ops
