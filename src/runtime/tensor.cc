// Tensor construction, element copies between any devices and layouts, and host transfers.
#include "flagstone/runtime/tensor.h"

#include <algorithm>
#include <cstring>
#include <sstream>

namespace flagstone {

using runtime::StridedCopy;

std::string shape_to_string(const Shape& shape) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << "]";
  return out.str();
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t size : shape) n *= size;
  return n;
}

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t stride = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= std::max<int64_t>(shape[i], 1);
  }
  return strides;
}

namespace {

void check_shape(const Shape& shape) {
  int64_t total = 1;
  for (int64_t size : shape) {
    FS_CHECK(size >= 0, kInvalidArgument, "shape ", shape_to_string(shape), " has a negative size");
    FS_CHECK(size == 0 || total <= INT64_MAX / size, kInvalidArgument, "shape ",
             shape_to_string(shape), " has more elements than fit in 64 bits");
    total *= size;
  }
}

void check_block_layout(const Shape& shape, DType dtype) {
  if (!is_quantized(dtype)) return;
  int block = dtype_info(dtype).block_elements;
  FS_CHECK(!shape.empty() && shape.back() % block == 0, kInvalidArgument, "a ", dtype_name(dtype),
           " tensor needs its last dimension to be a multiple of ", block, ", got shape ",
           shape_to_string(shape));
}

}  // namespace

Tensor Tensor::empty(const Shape& shape, DType dtype, const Device& device) {
  check_shape(shape);
  check_block_layout(shape, dtype);
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  t.buffer_ = Buffer::allocate(device, dtype_bytes(dtype, shape_numel(shape)));
  return t;
}

Tensor Tensor::from_buffer(Buffer buffer, const Shape& shape, const Shape& strides, int64_t offset,
                           DType dtype) {
  FS_CHECK(buffer.defined(), kInvalidArgument, "from_buffer: undefined buffer");
  check_shape(shape);
  FS_CHECK(strides.size() == shape.size(), kInvalidArgument, "from_buffer: shape ",
           shape_to_string(shape), " and strides ", shape_to_string(strides), " differ in rank");
  FS_CHECK(offset >= 0, kInvalidArgument, "from_buffer: negative offset ", offset);
  int64_t last = offset;
  bool empty = shape_numel(shape) == 0;
  for (size_t i = 0; i < shape.size(); ++i) {
    FS_CHECK(strides[i] >= 0, kInvalidArgument, "from_buffer: negative stride in ",
             shape_to_string(strides));
    if (!empty) last += strides[i] * (shape[i] - 1);
  }
  if (is_quantized(dtype)) {
    check_block_layout(shape, dtype);
    int block = dtype_info(dtype).block_elements;
    FS_CHECK(strides.back() == 1 && offset % block == 0, kInvalidArgument, "a ", dtype_name(dtype),
             " view must keep whole blocks contiguous in the last dim");
    last = last - (last % block) + block - 1;
  }
  if (!empty) {
    size_t needed = dtype_bytes(
        dtype, (last / dtype_info(dtype).block_elements + 1) * dtype_info(dtype).block_elements);
    FS_CHECK(needed <= buffer.size(), kInvalidArgument, "from_buffer: a ", dtype_name(dtype),
             shape_to_string(shape), " view with strides ", shape_to_string(strides), " at offset ",
             offset, " needs ", needed, " bytes but the buffer on ", buffer.device().spec(),
             " has ", buffer.size());
  }
  Tensor t;
  t.buffer_ = std::move(buffer);
  t.dtype_ = dtype;
  t.shape_ = shape;
  t.strides_ = strides;
  t.offset_ = offset;
  return t;
}

Tensor Tensor::from_host(const void* data, size_t bytes, const Shape& shape, DType dtype,
                         const Device& device) {
  Tensor t = empty(shape, dtype, device);
  t.copy_from_host(data, bytes);
  return t;
}

int64_t Tensor::size(int dim) const {
  int d = dim < 0 ? dim + this->dim() : dim;
  FS_CHECK(d >= 0 && d < this->dim(), kInvalidArgument, "dim ", dim, " out of range for ",
           describe());
  return shape_[d];
}

int64_t Tensor::stride(int dim) const {
  int d = dim < 0 ? dim + this->dim() : dim;
  FS_CHECK(d >= 0 && d < this->dim(), kInvalidArgument, "dim ", dim, " out of range for ",
           describe());
  return strides_[d];
}

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (size_t i = shape_.size(); i-- > 0;) {
    if (shape_[i] == 1) continue;
    if (strides_[i] != expected) return false;
    expected *= shape_[i];
  }
  return true;
}

void* Tensor::host_data() const {
  FS_CHECK(defined(), kInvalidArgument, "host_data of an undefined tensor");
  void* address = buffer_.host_address(byte_offset());
  FS_CHECK(address != nullptr, kInvalidArgument, "host_data of ", describe(),
           ": its device's memory is not host-accessible; copy it to the cpu first");
  return address;
}

std::string Tensor::describe() const {
  if (!defined()) return "undefined tensor";
  std::ostringstream out;
  out << dtype_name(dtype_) << shape_to_string(shape_) << " on " << device().spec();
  return out.str();
}

namespace {

// Describes an element-wise copy between two same-shaped layouts on one device, merging dims
// that are contiguous on both sides so that it fits the backend's kMaxDims.
StridedCopy plan_copy(const Tensor& dst, const Tensor& src) {
  StridedCopy copy;
  std::vector<int64_t> sizes, src_strides, dst_strides;
  for (int d = 0; d < dst.dim(); ++d) {
    if (dst.shape()[d] == 1) continue;
    if (!sizes.empty() && src_strides.back() == src.strides()[d] * dst.shape()[d] &&
        dst_strides.back() == dst.strides()[d] * dst.shape()[d]) {
      sizes.back() *= dst.shape()[d];
      src_strides.back() = src.strides()[d];
      dst_strides.back() = dst.strides()[d];
      continue;
    }
    sizes.push_back(dst.shape()[d]);
    src_strides.push_back(src.strides()[d]);
    dst_strides.push_back(dst.strides()[d]);
  }
  FS_CHECK(sizes.size() <= static_cast<size_t>(runtime::kMaxDims), kUnsupported,
           "copy between layouts ", shape_to_string(src.strides()), " and ",
           shape_to_string(dst.strides()), " of shape ", shape_to_string(dst.shape()), " needs ",
           sizes.size(), " dims after merging; backends copy at most ", runtime::kMaxDims);
  copy.ndim = static_cast<int>(sizes.size());
  for (int d = 0; d < copy.ndim; ++d) {
    copy.sizes[d] = sizes[d];
    copy.src_strides[d] = src_strides[d];
    copy.dst_strides[d] = dst_strides[d];
  }
  copy.element_bytes = dtype_size(dst.dtype());
  copy.src = src.buffer().handle();
  copy.src_offset = src.offset();
  copy.dst = dst.buffer().handle();
  copy.dst_offset = dst.offset();
  return copy;
}

bool has_overlapping_writes(const Tensor& t) {
  for (int d = 0; d < t.dim(); ++d) {
    if (t.shape()[d] > 1 && t.strides()[d] == 0) return true;
  }
  return false;
}

}  // namespace

void Tensor::copy_(const Tensor& src) {
  FS_CHECK(defined() && src.defined(), kInvalidArgument, "copy_ with an undefined tensor");
  FS_CHECK(shape_ == src.shape_ && dtype_ == src.dtype_, kInvalidArgument, "copy_ into ",
           describe(), " from ", src.describe(), ": shapes and dtypes must match");
  FS_CHECK(!has_overlapping_writes(*this), kInvalidArgument, "copy_ into ", describe(),
           " with strides ", shape_to_string(strides_),
           ": several elements share one memory location");
  if (numel() == 0) return;
  Stream stream = Stream::default_stream(device());
  if (is_quantized(dtype_)) {
    // Block data moves as bytes; only whole contiguous tensors are supported.
    FS_CHECK(is_contiguous() && src.is_contiguous(), kUnsupported, "copy_ of non-contiguous ",
             dtype_name(dtype_), " tensors");
    runtime::copy_device_to_device(stream, buffer_, byte_offset(), src.buffer_, src.byte_offset(),
                                   nbytes());
    return;
  }
  if (src.device() == device()) {
    device().impl().copy_strided(stream.impl(), plan_copy(*this, src));
    return;
  }
  Tensor staged = src.contiguous();
  if (is_contiguous()) {
    runtime::copy_device_to_device(stream, buffer_, byte_offset(), staged.buffer_,
                                   staged.byte_offset(), nbytes());
    return;
  }
  Tensor here = staged.to(device());
  device().impl().copy_strided(stream.impl(), plan_copy(*this, here));
}

Tensor Tensor::contiguous() const {
  FS_CHECK(defined(), kInvalidArgument, "contiguous of an undefined tensor");
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  FS_CHECK(defined(), kInvalidArgument, "clone of an undefined tensor");
  Tensor out = empty(shape_, dtype_, device());
  out.copy_(*this);
  return out;
}

Tensor Tensor::to(const Device& target) const {
  FS_CHECK(defined(), kInvalidArgument, "to(", target.spec(), ") of an undefined tensor");
  if (target == device()) return *this;
  Tensor out = empty(shape_, dtype_, target);
  out.copy_(*this);
  return out;
}

void Tensor::fill_bytes_(uint8_t value) {
  FS_CHECK(defined(), kInvalidArgument, "fill_bytes_ of an undefined tensor");
  if (is_contiguous()) {
    runtime::fill_bytes(Stream::default_stream(device()), buffer_, byte_offset(), nbytes(), value);
    return;
  }
  std::vector<uint8_t> pattern(nbytes(), value);
  copy_from_host(pattern.data(), pattern.size());
}

void Tensor::copy_to_host(void* dst, size_t bytes) const {
  FS_CHECK(defined(), kInvalidArgument, "copy_to_host of an undefined tensor");
  FS_CHECK(bytes == nbytes(), kInvalidArgument, "copy_to_host of ", describe(), " needs ", nbytes(),
           " bytes, got ", bytes);
  if (bytes == 0) return;
  Tensor source = contiguous();
  Stream stream = Stream::default_stream(device());
  runtime::copy_device_to_host(stream, dst, source.buffer_, source.byte_offset(), bytes);
  stream.synchronize();
}

void Tensor::copy_from_host(const void* src, size_t bytes) {
  FS_CHECK(defined(), kInvalidArgument, "copy_from_host of an undefined tensor");
  FS_CHECK(bytes == nbytes(), kInvalidArgument, "copy_from_host into ", describe(), " needs ",
           nbytes(), " bytes, got ", bytes);
  if (bytes == 0) return;
  if (is_contiguous()) {
    runtime::copy_host_to_device(Stream::default_stream(device()), buffer_, byte_offset(), src,
                                 bytes);
    return;
  }
  Tensor staged = from_host(src, bytes, shape_, dtype_, device());
  copy_(staged);
}

std::vector<double> Tensor::to_double_vector() const {
  FS_CHECK(!is_quantized(dtype_), kUnsupported, "to_double_vector of ", describe());
  std::vector<std::byte> raw(nbytes());
  copy_to_host(raw.data(), raw.size());
  std::vector<double> out(static_cast<size_t>(numel()));
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = load_as_double(raw.data(), dtype_, static_cast<int64_t>(i));
  }
  return out;
}

}  // namespace flagstone
