// Shared machinery of the cpu kernels: row plans over strided operands, the thread pool entry
// point and registration helpers.
#include "cpu/cpu_common.h"

#include <algorithm>

#include "add_impl.h"

namespace flagstone::ops::cpu {

Shape broadcast_strides(const Tensor& t, const Shape& shape) {
  Shape s(shape.size(), 0);
  size_t lead = shape.size() - t.shape().size();
  for (size_t i = 0; i < t.shape().size(); ++i)
    s[lead + i] = t.shape()[i] == 1 ? 0 : t.strides()[i];
  return s;
}

RowPlan plan_rows(const Shape& shape, const std::vector<Shape>& strides) {
  // Drop size-1 dims, then merge neighbours (i, i+1) where every operand has
  // stride[i] == stride[i+1] * size[i+1].
  Shape dims;
  std::vector<Shape> st(strides.size());
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    dims.push_back(shape[d]);
    for (size_t k = 0; k < strides.size(); ++k) st[k].push_back(strides[k][d]);
  }
  for (size_t d = dims.size(); d-- > 1;) {
    bool mergeable = true;
    for (size_t k = 0; k < st.size(); ++k)
      mergeable = mergeable && st[k][d - 1] == st[k][d] * dims[d];
    if (!mergeable) continue;
    dims[d - 1] *= dims[d];
    dims.erase(dims.begin() + static_cast<int64_t>(d));
    for (auto& s : st) s.erase(s.begin() + static_cast<int64_t>(d - 1));
  }
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
