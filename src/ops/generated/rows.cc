// Row views and row-kernel geometry shared by the generated norm, softmax and loss kernels.
#include "generated/rows.h"

namespace flagstone::ops::gen {

RowViews row_views(std::string_view op, const std::vector<Tensor>& tensors, int dim) {
  const Tensor& x = tensors.front();
  Shape kept;
  std::vector<Shape> strides(tensors.size());
  for (int d = 0; d < x.dim(); ++d) {
    if (d == dim) continue;
    kept.push_back(x.size(d));
    for (size_t i = 0; i < tensors.size(); ++i) strides[i].push_back(tensors[i].stride(d));
  }
  Collapsed c = collapse(kept, strides);
  FS_CHECK(c.sizes.size() <= 3, kUnsupported, "op '", op,
           "': generated row kernels take up to 3 non-mergeable outer dims");
  pad_rank(c, 3);
  RowViews r;
  r.n = x.dim() == 0 ? 1 : x.size(dim);
  r.unit = true;
  r.rows = shape_numel(c.sizes);
  for (size_t i = 0; i < tensors.size(); ++i) {
    Shape sizes = c.sizes, st = c.strides[i];
    sizes.push_back(r.n);
    st.push_back(x.dim() == 0 ? 0 : tensors[i].stride(dim));
    r.unit = r.unit && (r.n <= 1 || st.back() == 1);
    r.views.push_back(restride(tensors[i], sizes, st));
  }
  return r;
}

bool unit_rows(const RowViews& v, const std::vector<Tensor>& vectors) {
  bool unit = v.unit;
  for (const Tensor& t : vectors)
    unit = unit && (!t.defined() || t.numel() <= 1 || t.stride(0) == 1);
  return unit;
}

Config row_config(int64_t n) {
  if (n >= 512) return Config{{"BM", 1}, {"BN", 1024}, {"num_warps", 4}};
  return Config{{"BM", 16}, {"BN", 32}, {"num_warps", 4}};
}

std::vector<Config> row_configs() {
  return {row_config(0), row_config(1 << 20)};
}

RowGeometry::RowGeometry(KernelBuilder& builder, const TensorArg& x, bool unit_steps)
    : k(builder), unit(unit_steps) {
  bm = k.meta("BM");
  bn = k.meta("BN");
  rows = k.program_id(0) * bm + k.arange(0, bm);
  rmask = rows < x.size(0) * x.size(1) * x.size(2);
  k2 = rows % x.size(2);
  k1 = (rows / x.size(2)) % x.size(1);
  k0 = rows / (x.size(2) * x.size(1));
  n = x.size(3);
}

Value RowGeometry::ptrs(const TensorArg& t, const Value& cols) const {
  Value base = k0 * t.stride(0) + k1 * t.stride(1) + k2 * t.stride(2);
  return t.ptr + base.col() + (unit ? cols.row() : cols.row() * t.stride(3));
}

Value RowGeometry::row_ptrs(const TensorArg& t) const {
  return t.ptr + k0 * t.stride(0) + k1 * t.stride(1) + k2 * t.stride(2);
}

std::vector<Value> RowGeometry::loop(
    std::vector<Value> init,
    const std::function<std::vector<Value>(Value cols, std::vector<Value>)>& body) const {
  return k.for_range(0, n, bn, std::move(init), [&](Value start, std::vector<Value> carried) {
    return body(start + k.arange(0, bn), std::move(carried));
  });
}

}  // namespace flagstone::ops::gen
