// cpu native reductions: sum, mean, amax, amin over any dims and max/min/argmax/argmin along
// one dim. Reduced dims are moved last (a copy only when the layout needs one), then each
// output reduces one contiguous row with several partial accumulators.
#include <cmath>

#include "cpu/cpu_common.h"
#include "internal.h"
#include "shape_rules.h"

namespace flagstone::ops {
namespace cpu {
namespace {

// x with the reduced dims moved last, densely laid out; returns the row length.
Tensor rows_last(const Tensor& x, const std::vector<int>& dims, int64_t* row) {
  std::vector<int> order;
  for (int d = 0; d < x.dim(); ++d)
    if (std::find(dims.begin(), dims.end(), d) == dims.end()) order.push_back(d);
  *row = 1;
  for (int d : dims) order.push_back(d), *row *= x.size(d);
  Tensor p = x.dim() ? x.permute(order) : x;
  return p.is_contiguous() ? p : p.contiguous();
}

enum class Kind { kSum, kMean, kMax, kMin };

template <typename T>
void reduce_rows(const Tensor& x, int64_t row, const Tensor& out, Kind kind) {
  const T* px = ptr<const T>(x);
  T* po = ptr<T>(out);
  int64_t rows = out.numel();
  parallel(
      rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(row, 1)), [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
          const T* xr = px + r * row;
          float result;
          if (kind == Kind::kSum || kind == Kind::kMean) {
            float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            int64_t i = 0;
            for (; i + 8 <= row; i += 8)
              for (int j = 0; j < 8; ++j) acc[j] += load_f(xr[i + j]);
            float s = 0;
            for (; i < row; ++i) s += load_f(xr[i]);
            s += ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
            result = kind == Kind::kMean ? s / static_cast<float>(row) : s;
          } else {
            result = load_f(xr[0]);
            bool nan = false;
            for (int64_t i = 0; i < row; ++i) {
              float v = load_f(xr[i]);
              nan |= v != v;
              result = kind == Kind::kMax ? (v > result ? v : result) : (v < result ? v : result);
            }
            if (nan) result = NAN;
          }
          po[r] = store_f<T>(result);
        }
      });
}

// Values and first index of the extreme of each row; NaN counts as the extreme.
template <typename T>
void arg_rows(const Tensor& x, int64_t row, const Tensor& values, const Tensor& indices,
              bool is_max) {
  const T* px = ptr<const T>(x);
  int64_t rows = indices.numel();
  int64_t* pi = ptr<int64_t>(indices);
  T* pv = values.defined() ? ptr<T>(values) : nullptr;
  parallel(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(row, 1)),
           [&](int64_t b, int64_t e) {
             for (int64_t r = b; r < e; ++r) {
               const T* xr = px + r * row;
               int64_t best = 0;
               float bv = load_f(xr[0]);
               for (int64_t i = 1; i < row && bv == bv; ++i) {
                 float v = load_f(xr[i]);
                 if (v != v || (is_max ? v > bv : v < bv)) best = i, bv = v;
               }
               pi[r] = best;
               if (pv) pv[r] = xr[best];
             }
           });
}

}  // namespace
}  // namespace cpu

void register_cpu_reduction(Registry& r) {
  using namespace cpu;
  struct Spec {
    const char* name;
    Kind kind;
  };
  for (Spec s : {Spec{"sum", Kind::kSum}, Spec{"mean", Kind::kMean}, Spec{"amax", Kind::kMax},
                 Spec{"amin", Kind::kMin}}) {
    Kind kind = s.kind;
    add_native(
        r, s.name, kHalfAndF32,
        [kind](KernelArgs& args) {
          const Tensor& x = args.inputs[0];
          int64_t row = 1;
          Tensor rows =
              rows_last(x, normalize_dims(args.attrs.get_ints("dims", {}), x.dim()), &row);
          half_or_f32(x.dtype(),
                      [&]<typename T>() { reduce_rows<T>(rows, row, args.outputs[0], kind); });
        },
        false,
        [](const KernelArgs& args) {
          bool same = args.outputs.empty() || args.outputs[0].dtype() == args.inputs[0].dtype();
          return same && args.inputs[0].numel() > 0
                     ? std::string()
                     : std::string("dtype changes and empty inputs run in the reference");
        });
  }
  for (const char* name : {"max", "min", "argmax", "argmin"}) {
    std::string n = name;
    bool is_max = n == "max" || n == "argmax", with_values = n == "max" || n == "min";
    add_native(
        r, name, kHalfAndF32,
        [is_max, with_values](KernelArgs& args) {
          const Tensor& x = args.inputs[0];
          std::vector<int> dims;
          if (args.attrs.has("dim") && x.dim() > 0)
            dims = {normalize_dim(args.attrs.get_int("dim", 0), x.dim())};
          else
            for (int d = 0; d < x.dim(); ++d) dims.push_back(d);
          int64_t row = 1;
          Tensor rows = rows_last(x, dims, &row);
          half_or_f32(x.dtype(), [&]<typename T>() {
            arg_rows<T>(rows, row, with_values ? args.outputs[0] : Tensor(),
                        args.outputs[with_values ? 1 : 0], is_max);
          });
        },
        false);
  }
}

}  // namespace flagstone::ops
