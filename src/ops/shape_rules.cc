// Shared shape and dtype checks for op schemas.
#include "shape_rules.h"

#include <algorithm>

namespace flagstone::ops {

Shape broadcast_shapes(const Shape& a, const Shape& b) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    FS_CHECK(da == db || da == 1 || db == 1, kInvalidArgument, "shapes ", shape_to_string(a),
             " and ", shape_to_string(b), " do not broadcast (dim ", i, ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Shape broadcast_all(const std::vector<Tensor>& tensors) {
  Shape out;
  for (const Tensor& t : tensors)
    if (t.defined()) out = broadcast_shapes(out, t.shape());
  return out;
}

int normalize_dim(int64_t dim, int ndim, std::string_view what) {
  int64_t n = std::max(ndim, 1);  // a 0-d tensor accepts dim 0 and -1, as in torch
  FS_CHECK(dim >= -n && dim < n, kInvalidArgument, what, "=", dim, " is out of range for a ", ndim,
           "-d tensor (expected ", -n, "..", n - 1, ")");
  return static_cast<int>(dim < 0 ? dim + n : dim);
}

std::vector<int> normalize_dims(const std::vector<int64_t>& dims, int ndim) {
  std::vector<int> out;
  if (dims.empty()) {
    for (int i = 0; i < ndim; ++i) out.push_back(i);
    return out;
  }
  for (int64_t d : dims) {
    int n = normalize_dim(d, ndim, "dim");
    FS_CHECK(std::find(out.begin(), out.end(), n) == out.end(), kInvalidArgument, "dim ", d,
             " appears twice in the reduction dims");
    out.push_back(n);
  }
  std::sort(out.begin(), out.end());
  if (ndim == 0) out.clear();
  return out;
}

Shape reduced_shape(const Shape& shape, const std::vector<int>& dims, bool keepdim) {
  Shape out;
  for (int i = 0; i < static_cast<int>(shape.size()); ++i) {
    bool reduced = std::find(dims.begin(), dims.end(), i) != dims.end();
    if (!reduced)
      out.push_back(shape[i]);
    else if (keepdim)
      out.push_back(1);
  }
  return out;
}

void check_floating(const Tensor& t, std::string_view name) {
  FS_CHECK(is_floating(t.dtype()), kInvalidArgument, "tensor '", name, "' is ", t.describe(),
           "; a floating dtype (f32, f16, bf16, f64) is required");
}

void check_integer(const Tensor& t, std::string_view name) {
  FS_CHECK(dtype_info(t.dtype()).is_integer, kInvalidArgument, "tensor '", name, "' is ",
           t.describe(), "; an integer dtype is required");
}

void check_integer_or_bool(const Tensor& t, std::string_view name) {
  FS_CHECK(dtype_info(t.dtype()).is_integer || t.dtype() == DType::kBool, kInvalidArgument,
           "tensor '", name, "' is ", t.describe(), "; an integer or bool dtype is required");
}

void check_index(const Tensor& t, std::string_view name) {
  FS_CHECK(t.dtype() == DType::kI64 || t.dtype() == DType::kI32, kInvalidArgument, "index tensor '",
           name, "' is ", t.describe(), "; i64 or i32 is required");
}

void check_ndim(const Tensor& t, std::string_view name, int ndim) {
  FS_CHECK(t.dim() == ndim, kInvalidArgument, "tensor '", name, "' is ", t.describe(),
           "; expected ", ndim, " dims");
}

void check_same_dtype(const Tensor& a, std::string_view a_name, const Tensor& b,
                      std::string_view b_name) {
  FS_CHECK(a.dtype() == b.dtype(), kInvalidArgument, "tensor '", b_name, "' is ", b.describe(),
           " but '", a_name, "' is ", a.describe(), "; their dtypes must match");
}

void check_shape(const Tensor& t, std::string_view name, const Shape& expected) {
  FS_CHECK(t.shape() == expected, kInvalidArgument, "tensor '", name, "' is ", t.describe(),
           "; expected shape ", shape_to_string(expected));
}

DType attr_dtype(const Attrs& attrs, DType fallback) {
  if (!attrs.has("dtype")) return fallback;
  return parse_dtype(attrs.get_string("dtype", ""));
}

std::vector<DType> all_plain_types() {
  std::vector<DType> out = numeric_types();
  out.push_back(DType::kBool);
  return out;
}

std::vector<DType> numeric_types() {
  std::vector<DType> out = kFloatTypes;
  out.insert(out.end(), kIntTypes.begin(), kIntTypes.end());
  return out;
}

std::vector<DType> int_and_bool_types() {
  std::vector<DType> out = kIntTypes;
  out.push_back(DType::kBool);
  return out;
}

}  // namespace flagstone::ops

namespace flagstone::ops {
void check_dtype_in(const Tensor& t, std::string_view name, const std::vector<DType>& allowed) {
  if (std::find(allowed.begin(), allowed.end(), t.dtype()) != allowed.end()) return;
  std::string list;
  for (DType d : allowed) list += (list.empty() ? "" : ", ") + std::string(dtype_name(d));
  throw_error(ErrorCategory::kInvalidArgument, "tensor '", name, "' is ", t.describe(),
              "; supported dtypes: ", list);
}
}  // namespace flagstone::ops

namespace flagstone::ops {
GemmShape gemm_shape(const KernelArgs& args) {
  std::string_view op = args.op;
  GemmShape g;
  if (op == "mm" || op == "addmm") {
    const Tensor& a = args.inputs[op == "mm" ? 0 : 1];
    const Tensor& b = args.inputs[op == "mm" ? 1 : 2];
    g.m = a.size(0), g.k = a.size(1), g.n = b.size(1);
    g.a_off = {0}, g.b_off = {0};
  } else if (op == "bmm") {
    const Tensor &a = args.inputs[0], &b = args.inputs[1];
    g.m = a.size(1), g.k = a.size(2), g.n = b.size(2);
    for (int64_t p = 0; p < a.size(0); ++p)
      g.a_off.push_back(p * g.m * g.k), g.b_off.push_back(p * g.k * g.n);
  } else if (op == "linear") {
    const Tensor& w = args.inputs[1];
    g.k = w.size(1), g.n = w.size(0), g.m = g.n ? args.outputs[0].numel() / g.n : 0;
    g.b_trans = true;
    g.a_off = {0}, g.b_off = {0};
  } else {  // matmul
    Tensor a = args.inputs[0], b = args.inputs[1];
    if (a.dim() == 1) a = a.unsqueeze(0);
    if (b.dim() == 1) b = b.unsqueeze(1);
    g.m = a.size(a.dim() - 2), g.k = a.size(a.dim() - 1), g.n = b.size(b.dim() - 1);
    Shape ab(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
    size_t nd = std::max(ab.size(), bb.size());
    ab.insert(ab.begin(), nd - ab.size(), 1), bb.insert(bb.begin(), nd - bb.size(), 1);
    Shape batch(nd);
    for (size_t i = 0; i < nd; ++i) batch[i] = std::max(ab[i], bb[i]);
    for (int64_t p = 0; p < shape_numel(batch); ++p) {
      int64_t rem = p, ia = 0, ib = 0, sa = 1, sb = 1;
      for (size_t d = nd; d-- > 0;) {
        int64_t c = rem % batch[d];
        rem /= batch[d];
        ia += (ab[d] == 1 ? 0 : c) * sa, ib += (bb[d] == 1 ? 0 : c) * sb;
        sa *= ab[d], sb *= bb[d];
      }
      g.a_off.push_back(ia * g.m * g.k), g.b_off.push_back(ib * g.k * g.n);
    }
  }
  return g;
}

Shape broadcast_strides(const Tensor& t, const Shape& shape) {
  Shape s(shape.size(), 0);
  size_t lead = shape.size() - t.shape().size();
  for (size_t i = 0; i < t.shape().size(); ++i)
    s[lead + i] = t.shape()[i] == 1 ? 0 : t.strides()[i];
  return s;
}

void collapse_dims(const Shape& shape, const std::vector<Shape>& strides, Shape& dims,
                   std::vector<Shape>& dim_strides) {
  dims.clear();
  dim_strides.assign(strides.size(), Shape());
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    dims.push_back(shape[d]);
    for (size_t k = 0; k < strides.size(); ++k) dim_strides[k].push_back(strides[k][d]);
  }
  for (size_t d = dims.size(); d-- > 1;) {
    bool mergeable = true;
    for (const Shape& st : dim_strides) mergeable = mergeable && st[d - 1] == st[d] * dims[d];
    if (!mergeable) continue;
    dims[d - 1] *= dims[d];
    dims.erase(dims.begin() + static_cast<int64_t>(d));
    for (Shape& st : dim_strides) st.erase(st.begin() + static_cast<int64_t>(d - 1));
  }
}
}  // namespace flagstone::ops
