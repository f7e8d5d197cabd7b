// cpu native sampling and ordering: the token sampler (greedy, temperature, top-k, top-p,
// min-p over the Philox stream) with the reference's exact double arithmetic so both choose the
// same token, and topk by partial sort.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "cpu/cpu_common.h"
#include "flagstone/ops/random.h"
#include "internal.h"
#include "shape_rules.h"

namespace flagstone::ops {
namespace cpu {
namespace {

// Descending by value, NaN first, ties by lower index: the reference's stable order.
struct Before {
  const double* p;
  bool operator()(int64_t a, int64_t b) const {
    double x = p[a], y = p[b];
    if (std::isnan(x) != std::isnan(y)) return std::isnan(x);
    if (x != y && !std::isnan(x)) return x > y;
    return a < b;
  }
};

int64_t sample_row(const double* logits, int64_t n, const Attrs& attrs, float u,
                   std::vector<double>& p, std::vector<int64_t>& order) {
  double temperature = attrs.get_double("temperature", 1.0);
  int64_t top_k = attrs.get_int("top_k", 0);
  double top_p = attrs.get_double("top_p", 1.0), min_p = attrs.get_double("min_p", 0.0);
  double m = -INFINITY, total = 0;
  for (int64_t j = 0; j < n; ++j) m = std::max(m, logits[j] / temperature);
  for (int64_t j = 0; j < n; ++j) total += p[j] = std::exp(logits[j] / temperature - m);
  for (int64_t j = 0; j < n; ++j) p[j] /= total;
  std::iota(order.begin(), order.end(), 0);
  int64_t keep = n;
  if (top_k > 0 && top_k < n && top_p >= 1.0) {
    std::partial_sort(order.begin(), order.begin() + top_k, order.end(), Before{p.data()});
  } else {
    std::sort(order.begin(), order.end(), Before{p.data()});
  }
  if (top_k > 0) keep = std::min(keep, top_k);
  std::vector<char> kept(static_cast<size_t>(n), 0);
  for (int64_t r = 0; r < keep; ++r) kept[order[r]] = 1;
  if (top_p < 1.0) {
    double mass = 0, cum = 0;
    for (int64_t j = 0; j < n; ++j) mass += kept[j] ? p[j] : 0;
    for (int64_t r = 0; r < keep; ++r) {
      if (cum >= top_p * mass) kept[order[r]] = 0;
      cum += p[order[r]];
    }
  }
  if (min_p > 0) {
    double threshold = min_p * p[order[0]];
    for (int64_t j = 0; j < n; ++j)
      if (p[j] < threshold) kept[j] = 0;
  }
  double mass = 0;
  for (int64_t j = 0; j < n; ++j) mass += kept[j] ? p[j] : 0;
  double cum = 0;
  int64_t last = -1;
  for (int64_t j = 0; j < n; ++j) {
    double q = kept[j] ? p[j] / mass : 0;
    if (q <= 0) continue;
    cum += q;
    last = j;
    if (u < cum) return j;
  }
  return last;
}

template <typename T>
void sample(KernelArgs& args) {
  const Tensor& x = args.inputs[0];
  int64_t rows = x.size(0), n = x.size(1);
  const T* px = ptr<const T>(x);
  int64_t* out = ptr<int64_t>(args.outputs[0]);
  auto seed = static_cast<uint64_t>(args.attrs.get_int("seed", 0));
  auto offset = static_cast<uint64_t>(args.attrs.get_int("offset", 0));
  bool greedy = args.attrs.get_double("temperature", 1.0) == 0;
  parallel(rows, 1, [&](int64_t b, int64_t e) {
    std::vector<double> row(static_cast<size_t>(n)), p(row.size());
    std::vector<int64_t> order(row.size());
    for (int64_t r = b; r < e; ++r) {
      for (int64_t j = 0; j < n; ++j) row[j] = load_f(px[r * n + j]);
      if (greedy) {
        int64_t best = 0;
        for (int64_t j = 1; j < n && !std::isnan(row[best]); ++j)
          if (std::isnan(row[j]) || row[j] > row[best]) best = j;
        out[r] = best;
      } else {
        out[r] = sample_row(row.data(), n, args.attrs,
                            random_uniform(seed, offset, static_cast<uint64_t>(r)), p, order);
      }
    }
  });
}

template <typename T>
void topk(KernelArgs& args) {
  const Tensor& x = args.inputs[0];
  int64_t n = x.shape().back(), k = args.attrs.int_at("k"), rows = n ? x.numel() / n : 0;
  bool largest = args.attrs.get_bool("largest", true);
  const T* px = ptr<const T>(x);
  T* pv = ptr<T>(args.outputs[0]);
  int64_t* pi = ptr<int64_t>(args.outputs[1]);
  parallel(rows, 1, [&](int64_t b, int64_t e) {
    std::vector<double> v(static_cast<size_t>(n));
    std::vector<int64_t> order(v.size());
    for (int64_t r = b; r < e; ++r) {
      for (int64_t j = 0; j < n; ++j) v[j] = load_f(px[r * n + j]);
      if (!largest)
        for (auto& e2 : v) e2 = std::isnan(e2) ? e2 : -e2;  // NaN stays the largest
      std::iota(order.begin(), order.end(), 0);
      auto before = [&](int64_t a, int64_t c) {
        double x1 = v[a], y1 = v[c];
        if (std::isnan(x1) != std::isnan(y1)) return largest ? std::isnan(x1) : std::isnan(y1);
        if (x1 != y1 && !std::isnan(x1)) return x1 > y1;
        return a < c;
      };
      std::partial_sort(order.begin(), order.begin() + k, order.end(), before);
      for (int64_t j = 0; j < k; ++j) {
        pi[r * k + j] = order[j];
        pv[r * k + j] = px[r * n + order[j]];
      }
    }
  });
}

}  // namespace
}  // namespace cpu

void register_cpu_sample(Registry& r) {
  using namespace cpu;
  add_native_f32_half(r, "sample", []<typename T>(KernelArgs& args) { sample<T>(args); });
  add_native_f32_half(
      r, "topk", []<typename T>(KernelArgs& args) { topk<T>(args); },
      [](const KernelArgs& args) {
        const Tensor& x = args.inputs[0];
        int64_t dim = args.attrs.get_int("dim", -1);
        bool last = x.dim() > 0 && (dim == -1 || dim == x.dim() - 1);
        return last ? std::string() : std::string("the native topk works along the last dim");
      });
}

}  // namespace flagstone::ops
