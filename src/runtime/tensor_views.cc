// Tensor views: new shape/stride/offset over the same storage, never a copy (except reshape
// when no view exists).
#include <algorithm>
#include <numeric>

#include "flagstone/runtime/tensor.h"

namespace flagstone {
namespace {

int wrap_dim(int dim, int rank, const Tensor& t, const char* op) {
  int d = dim < 0 ? dim + rank : dim;
  FS_CHECK(d >= 0 && d < rank, kInvalidArgument, op, ": dim ", dim, " out of range for ",
           t.describe());
  return d;
}

}  // namespace

Tensor Tensor::slice(int dim, int64_t start, int64_t end, int64_t step) const {
  FS_CHECK(defined(), kInvalidArgument, "slice of an undefined tensor");
  int d = wrap_dim(dim, this->dim(), *this, "slice");
  FS_CHECK(step >= 1, kInvalidArgument, "slice of ", describe(), ": step must be >= 1, got ", step);
  int64_t size = shape_[d];
  // Python rules: negative indices count from the end; out-of-range bounds clamp.
  if (start < 0) start += size;
  if (end < 0) end += size;
  start = std::clamp<int64_t>(start, 0, size);
  end = std::clamp<int64_t>(end, start, size);
  Tensor out = *this;
  out.shape_[d] = (end - start + step - 1) / step;
  out.strides_[d] = strides_[d] * step;
  out.offset_ = offset_ + start * strides_[d];
  if (is_quantized(dtype_) && d == this->dim() - 1) {
    int block = dtype_info(dtype_).block_elements;
    FS_CHECK(step == 1 && start % block == 0 && out.shape_[d] % block == 0, kInvalidArgument,
             "slice of ", describe(), " along the last dim must keep whole ", block,
             "-value blocks");
  }
  return out;
}

Tensor Tensor::narrow(int dim, int64_t start, int64_t length) const {
  int d = wrap_dim(dim, this->dim(), *this, "narrow");
  if (start < 0) start += shape_[d];
  FS_CHECK(start >= 0 && length >= 0 && start + length <= shape_[d], kInvalidArgument, "narrow of ",
           describe(), ": [", start, ", ", start + length, ") is outside dim ", dim, " of size ",
           shape_[d]);
  return slice(d, start, start + length);
}

Tensor Tensor::select(int dim, int64_t index) const {
  int d = wrap_dim(dim, this->dim(), *this, "select");
  FS_CHECK(!is_quantized(dtype_) || d != this->dim() - 1, kInvalidArgument,
           "select along the "
           "last dim of block-quantized ",
           describe());
  int64_t i = index < 0 ? index + shape_[d] : index;
  FS_CHECK(i >= 0 && i < shape_[d], kInvalidArgument, "select of ", describe(), ": index ", index,
           " out of range for dim ", dim, " of size ", shape_[d]);
  Tensor out = *this;
  out.offset_ = offset_ + i * strides_[d];
  out.shape_.erase(out.shape_.begin() + d);
  out.strides_.erase(out.strides_.begin() + d);
  return out;
}

Tensor Tensor::permute(const std::vector<int>& dims) const {
  FS_CHECK(static_cast<int>(dims.size()) == dim(), kInvalidArgument, "permute of ", describe(),
           " needs ", dim(), " dims, got ", dims.size());
  std::vector<bool> seen(dims.size(), false);
  Tensor out = *this;
  for (size_t i = 0; i < dims.size(); ++i) {
    int d = wrap_dim(dims[i], dim(), *this, "permute");
    FS_CHECK(!seen[d], kInvalidArgument, "permute of ", describe(), ": dim ", dims[i], " repeated");
    seen[d] = true;
    out.shape_[i] = shape_[d];
    out.strides_[i] = strides_[d];
  }
  FS_CHECK(!is_quantized(dtype_) || out.strides_.back() == 1, kInvalidArgument,
           "permute of "
           "block-quantized ",
           describe(), " must keep the last dim last");
  return out;
}

Tensor Tensor::transpose(int dim0, int dim1) const {
  std::vector<int> dims(static_cast<size_t>(dim()));
  std::iota(dims.begin(), dims.end(), 0);
  std::swap(dims[wrap_dim(dim0, dim(), *this, "transpose")],
            dims[wrap_dim(dim1, dim(), *this, "transpose")]);
  return permute(dims);
}

namespace {

Shape infer_shape(const Shape& requested, int64_t numel, const Tensor& t) {
  Shape shape = requested;
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      FS_CHECK(infer < 0, kInvalidArgument, "view of ", t.describe(), " as ",
               shape_to_string(requested), ": only one dim may be -1");
      infer = static_cast<int>(i);
    } else {
      FS_CHECK(shape[i] >= 0, kInvalidArgument, "view of ", t.describe(), " as ",
               shape_to_string(requested), ": negative size");
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    FS_CHECK(known != 0 && numel % known == 0, kInvalidArgument, "view of ", t.describe(), " as ",
             shape_to_string(requested), ": cannot infer the -1 dim");
    shape[infer] = numel / known;
  }
  FS_CHECK(shape_numel(shape) == numel, kInvalidArgument, "view of ", t.describe(), " as ",
           shape_to_string(requested), ": element counts differ");
  return shape;
}

// Strides for `shape` over the memory of (old_shape, old_strides), or false when the new shape
// would need a copy. Groups of old dims that are contiguous among themselves can be re-split.
bool compute_view_strides(const Shape& old_shape, const Shape& old_strides, const Shape& shape,
                          Shape* strides) {
  strides->assign(shape.size(), 0);
  if (old_shape.empty() || shape_numel(old_shape) == 0) {
    *strides = contiguous_strides(shape);
    return true;
  }
  int view_d = static_cast<int>(shape.size()) - 1;
  int64_t chunk_base_stride = old_strides.empty() ? 1 : old_strides.back();
  int64_t tensor_numel = 1;
  int64_t view_numel = 1;
  for (int d = static_cast<int>(old_shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= old_shape[d];
    // End of a contiguous chunk of old dims: lay the new dims of the same product over it.
    if (d == 0 ||
        (old_shape[d - 1] != 1 && old_strides[d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
        (*strides)[view_d] = view_numel * chunk_base_stride;
        view_numel *= shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return false;
      if (d > 0) {
        chunk_base_stride = old_strides[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  return view_d == -1;
}

}  // namespace

Tensor Tensor::view(const Shape& requested) const {
  FS_CHECK(defined(), kInvalidArgument, "view of an undefined tensor");
  Shape shape = infer_shape(requested, numel(), *this);
  Shape strides;
  FS_CHECK(compute_view_strides(shape_, strides_, shape, &strides), kInvalidArgument, "view of ",
           describe(), " with strides ", shape_to_string(strides_), " as ", shape_to_string(shape),
           " is impossible without a copy; use reshape()");
  Tensor out = *this;
  out.shape_ = shape;
  out.strides_ = strides;
  if (is_quantized(dtype_)) {
    FS_CHECK(!shape.empty() && shape.back() % dtype_info(dtype_).block_elements == 0 &&
                 strides.back() == 1,
             kInvalidArgument, "view of block-quantized ", describe(), " as ",
             shape_to_string(shape), " splits blocks");
  }
  return out;
}

Tensor Tensor::reshape(const Shape& requested) const {
  FS_CHECK(defined(), kInvalidArgument, "reshape of an undefined tensor");
  Shape shape = infer_shape(requested, numel(), *this);
  Shape strides;
  if (compute_view_strides(shape_, strides_, shape, &strides)) return view(shape);
  return contiguous().view(shape);
}

Tensor Tensor::unsqueeze(int dim) const {
  int d = dim < 0 ? dim + this->dim() + 1 : dim;
  FS_CHECK(d >= 0 && d <= this->dim(), kInvalidArgument, "unsqueeze of ", describe(), ": dim ", dim,
           " out of range");
  Tensor out = *this;
  int64_t stride = d < this->dim() ? strides_[d] * shape_[d] : 1;
  out.shape_.insert(out.shape_.begin() + d, 1);
  out.strides_.insert(out.strides_.begin() + d, stride);
  return out;
}

Tensor Tensor::squeeze(int dim) const {
  int d = wrap_dim(dim, this->dim(), *this, "squeeze");
  if (shape_[d] != 1) return *this;
  Tensor out = *this;
  out.shape_.erase(out.shape_.begin() + d);
  out.strides_.erase(out.strides_.begin() + d);
  return out;
}

Tensor Tensor::expand(const Shape& shape) const {
  FS_CHECK(defined(), kInvalidArgument, "expand of an undefined tensor");
  FS_CHECK(shape.size() >= shape_.size(), kInvalidArgument, "expand of ", describe(), " to ",
           shape_to_string(shape), ": fewer dims than the tensor");
  FS_CHECK(!is_quantized(dtype_), kUnsupported, "expand of block-quantized ", describe());
  size_t lead = shape.size() - shape_.size();
  Tensor out = *this;
  out.shape_ = shape;
  out.strides_.assign(shape.size(), 0);
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i < lead) {
      FS_CHECK(shape[i] >= 0, kInvalidArgument, "expand to ", shape_to_string(shape),
               ": new leading dims need explicit sizes");
      continue;
    }
    int64_t old = shape_[i - lead];
    int64_t want = shape[i] == -1 ? old : shape[i];
    FS_CHECK(want == old || old == 1, kInvalidArgument, "expand of ", describe(), " to ",
             shape_to_string(shape), ": dim ", i, " of size ", old, " cannot become ", want);
    out.shape_[i] = want;
    out.strides_[i] = (want == old) ? strides_[i - lead] : 0;
  }
  return out;
}

Tensor Tensor::view_as_dtype(DType dtype) const {
  FS_CHECK(defined(), kInvalidArgument, "view_as_dtype of an undefined tensor");
  FS_CHECK(!is_quantized(dtype) && !is_quantized(dtype_) && dtype_size(dtype) == dtype_size(dtype_),
           kInvalidArgument, "view of ", describe(), " as ", dtype_name(dtype),
           ": element sizes differ");
  Tensor out = *this;
  out.dtype_ = dtype;
  return out;
}

}  // namespace flagstone
