// Shared machinery of the cpu kernels: row plans over strided operands, the thread pool entry
// point and registration helpers.
#include "cpu/cpu_common.h"

#include <algorithm>

#include "add_impl.h"

namespace flagstone::ops::cpu {

RowPlan plan_rows(const Shape& shape, const std::vector<Shape>& strides) {
  Shape dims;
  std::vector<Shape> st;
  collapse_dims(shape, strides, dims, st);
  RowPlan plan;
  plan.row_length = dims.empty() ? 1 : dims.back();
  plan.rows =
      shape_numel(shape) == 0 ? 0 : (dims.empty() ? 1 : shape_numel(dims) / plan.row_length);
  for (size_t k = 0; k < st.size(); ++k)
    plan.inner_stride.push_back(dims.empty() ? 0 : st[k].back());
  plan.offsets.assign(st.size(), std::vector<int64_t>(static_cast<size_t>(plan.rows), 0));
  for (int64_t r = 0; r < plan.rows; ++r) {
    int64_t rem = r;
    for (size_t d = dims.size() - (dims.empty() ? 0 : 1); d-- > 0;) {
      int64_t c = rem % dims[d];
      rem /= dims[d];
      for (size_t k = 0; k < st.size(); ++k) plan.offsets[k][r] += c * st[k][d];
    }
  }
  return plan;
}

void parallel(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body) {
  runtime::cpu_thread_pool().parallel_for(n, grain, body);
}

void add_native(Registry& r, const std::string& op, std::vector<DType> dtypes, KernelFn fn,
                bool strided, std::function<std::string(const KernelArgs&)> supports,
                Provider provider) {
  add_backend_implementation(r, "cpu", op, std::move(dtypes), std::move(fn), strided,
                             std::move(supports), provider);
}

Tensor as_dtype(const Tensor& t, DType dtype) {
  if (t.dtype() == dtype) return t;
  return call("cast", {t}, {{"dtype", std::string(dtype_name(dtype))}})[0];
}

}  // namespace flagstone::ops::cpu
