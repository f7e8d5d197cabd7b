// Tensor: a typed, strided view of a device Buffer. Views (slice, permute, expand, ...) share
// storage; contiguous(), clone() and to() copy. Shapes and strides count elements, not bytes.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <string>
#include <vector>

#include "flagstone/base/dtype.h"
#include "flagstone/base/error.h"
#include "flagstone/base/half.h"
#include "flagstone/runtime/device.h"

namespace flagstone {

using runtime::Buffer;
using runtime::Device;
using runtime::Stream;
using Shape = std::vector<int64_t>;

std::string shape_to_string(const Shape& shape);
int64_t shape_numel(const Shape& shape);
Shape contiguous_strides(const Shape& shape);

class Tensor {
 public:
  Tensor() = default;  // undefined; most calls on it throw

  static Tensor empty(const Shape& shape, DType dtype, const Device& device = Device());
  // A tensor over existing storage; checks that every element lies inside the buffer.
  static Tensor from_buffer(Buffer buffer, const Shape& shape, const Shape& strides,
                            int64_t offset, DType dtype);
  // Copies `bytes` of contiguous host data; bytes must equal the tensor's size in bytes.
  static Tensor from_host(const void* data, size_t bytes, const Shape& shape, DType dtype,
                          const Device& device = Device());
  template <typename T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape,
                            const Device& device = Device()) {
    return from_host(values.data(), values.size() * sizeof(T), shape, DTypeOf<T>::value, device);
  }

  bool defined() const { return buffer_.defined(); }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  int64_t offset() const { return offset_; }
  int dim() const { return static_cast<int>(shape_.size()); }
  int64_t size(int dim) const;
  int64_t stride(int dim) const;
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return dtype_bytes(dtype_, numel()); }
  const Device& device() const { return buffer_.device(); }
  const Buffer& buffer() const { return buffer_; }
  size_t byte_offset() const { return dtype_bytes(dtype_, offset_); }
  bool is_contiguous() const;
  // Host address of the first element, for tensors on host-accessible devices (cpu).
  void* host_data() const;
  template <typename T>
  T* data() const {
    FS_CHECK(DTypeOf<T>::value == dtype_, kInvalidArgument, "tensor of dtype ", dtype_name(dtype_),
             " accessed as ", dtype_name(DTypeOf<T>::value));
    return static_cast<T*>(host_data());
  }

  // Views: share storage, throw kInvalidArgument naming the dim/shape at fault.
  Tensor slice(int dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor narrow(int dim, int64_t start, int64_t length) const;
  Tensor select(int dim, int64_t index) const;
  Tensor permute(const std::vector<int>& dims) const;
  Tensor transpose(int dim0, int dim1) const;
  Tensor t() const { return transpose(0, 1); }
  // A view with the new shape (one entry may be -1); throws if the strides do not allow it.
  Tensor view(const Shape& shape) const;
  // view() when possible, else a contiguous copy.
  Tensor reshape(const Shape& shape) const;
  Tensor flatten() const { return reshape({-1}); }
  Tensor unsqueeze(int dim) const;
  Tensor squeeze(int dim) const;
  // Broadcasts size-1 dims (stride 0) and prepends dims, as torch.expand.
  Tensor expand(const Shape& shape) const;
  // Reinterprets the bytes as another dtype of the same element size.
  Tensor view_as_dtype(DType dtype) const;

  // Copies (on the device's default stream; the result is ready for further work there).
  Tensor contiguous() const;
  Tensor clone() const;
  Tensor to(const Device& device) const;
  // Copies every element of `src` (same shape and dtype, any device, any strides) into this.
  void copy_(const Tensor& src);
  // Fills every byte of the tensor's elements with `value` (for poisoning outputs in tests).
  void fill_bytes_(uint8_t value);

  // Host transfers of the elements in logical (row-major) order; they synchronize.
  void copy_to_host(void* dst, size_t bytes) const;
  void copy_from_host(const void* src, size_t bytes);
  template <typename T>
  std::vector<T> to_vector() const {
    FS_CHECK(DTypeOf<T>::value == dtype_, kInvalidArgument, "to_vector of a ", dtype_name(dtype_),
             " tensor as ", dtype_name(DTypeOf<T>::value));
    std::vector<T> out(static_cast<size_t>(numel()));
    copy_to_host(out.data(), out.size() * sizeof(T));
    return out;
  }
  // Every element converted to double (plain dtypes only).
  std::vector<double> to_double_vector() const;

  // "tensor([[1.0000, 2.0000], ...], dtype=f32, device=cpu:0)", eliding past `max_elements`.
  std::string to_string(int64_t max_elements = 1000) const;
  // "f32[2, 3] cpu:0" for error messages.
  std::string describe() const;

 private:
  Buffer buffer_;
  DType dtype_ = DType::kF32;
  Shape shape_;
  Shape strides_;
  int64_t offset_ = 0;
};

std::ostream& operator<<(std::ostream& out, const Tensor& tensor);

}  // namespace flagstone
