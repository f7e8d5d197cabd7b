// cpu native row-wise kernels: softmax / log_softmax over the last dim, rms_norm, layer_norm and
// fused add + rms_norm. One row per task chunk; f32 statistics; f16/bf16 widened in registers.
#include <cmath>

#include "cpu/cpu_common.h"
#include "internal.h"

namespace flagstone::ops {
namespace cpu {
namespace {

const std::vector<DType> kHalfAndF32{DType::kF32, DType::kF16, DType::kBF16};

int64_t rows_of(const Tensor& t) {
  int64_t n = t.dim() == 0 ? 1 : t.shape().back();
  return n == 0 ? 0 : t.numel() / n;
}

// Float sum of a row with 8 independent partial sums (vectorizes, and keeps error low).
template <typename T, typename F>
float row_sum(const T* x, int64_t n, F f) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += f(load_f(x[i + j]));
  float s = 0;
  for (; i < n; ++i) s += f(load_f(x[i]));
  return s + ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

template <typename T>
void softmax_rows(const Tensor& x, const Tensor& out, bool log) {
  int64_t n = x.dim() == 0 ? 1 : x.shape().back(), rows = rows_of(x);
  const T* px = ptr<const T>(x);
  T* po = ptr<T>(out);
  parallel(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(n, 1)), [&](int64_t b, int64_t e) {
    std::vector<float> tmp(static_cast<size_t>(n));
    for (int64_t r = b; r < e; ++r) {
      const T* xr = px + r * n;
      T* orow = po + r * n;
      float m = -INFINITY;
      for (int64_t i = 0; i < n; ++i) m = std::max(m, load_f(xr[i]));
      float s = 0;
      for (int64_t i = 0; i < n; ++i) s += tmp[i] = std::exp(load_f(xr[i]) - m);
      if (log) {
        float lse = m + std::log(s);
        for (int64_t i = 0; i < n; ++i) orow[i] = store_f<T>(load_f(xr[i]) - lse);
      } else {
        float inv = 1.0f / s;
        for (int64_t i = 0; i < n; ++i) orow[i] = store_f<T>(tmp[i] * inv);
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
  parallel(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(n, 1)), [&](int64_t b, int64_t e) {
    std::vector<float> sum(static_cast<size_t>(n));
    for (int64_t r = b; r < e; ++r) {
      for (int64_t i = 0; i < n; ++i) {
        float v = load_f(px[r * n + i]);
        if (pr) {
          // The residual stream is kept in the tensor's dtype, so round the sum first.
          T rounded = store_f<T>(v + load_f(pr[r * n + i]));
          pro[r * n + i] = rounded;
          v = load_f(rounded);
        }
        sum[i] = v;
      }
      float ss = row_sum(sum.data(), n, [](float v) { return v * v; });
      float scale = 1.0f / std::sqrt(ss / static_cast<float>(n) + static_cast<float>(eps));
      for (int64_t i = 0; i < n; ++i)
        po[r * n + i] = store_f<T>(sum[i] * scale * (pw ? load_f(pw[i]) : 1.0f));
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
  parallel(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(n, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const T* xr = px + r * n;
      float mean = row_sum(xr, n, [](float v) { return v; }) / static_cast<float>(n);
      float var = row_sum(xr, n, [mean](float v) { return (v - mean) * (v - mean); }) /
                  static_cast<float>(n);
      float rstd = 1.0f / std::sqrt(var + static_cast<float>(eps));
      for (int64_t i = 0; i < n; ++i)
        po[r * n + i] = store_f<T>((load_f(xr[i]) - mean) * rstd * (pw ? load_f(pw[i]) : 1.0f) +
                                   (pb ? load_f(pb[i]) : 0.0f));
    }
  });
}

Tensor optional_input(const KernelArgs& args, size_t i) {
  return i < args.inputs.size() ? args.inputs[i] : Tensor();
}

template <typename F>
void half_or_f32(DType d, F&& f) {
  dispatch_float(d, [&]<typename T>() {
    if constexpr (!std::is_same_v<T, double>) f.template operator()<T>();
  });
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
