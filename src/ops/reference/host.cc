// Host-side conversions for the reference implementations.
#include "reference/host.h"

#include <algorithm>
#include <cstring>

#include "flagstone/base/half.h"

namespace flagstone::ops::ref {
namespace {

std::vector<std::byte> raw(const Tensor& t) {
  std::vector<std::byte> bytes(t.nbytes());
  if (!bytes.empty()) t.copy_to_host(bytes.data(), bytes.size());
  return bytes;
}

template <typename T>
T read(const std::byte* p, int64_t i) {
  T v;
  std::memcpy(&v, p + i * static_cast<int64_t>(sizeof(T)), sizeof(T));
  return v;
}

template <typename T>
void write(std::byte* p, int64_t i, T v) {
  std::memcpy(p + i * static_cast<int64_t>(sizeof(T)), &v, sizeof(T));
}

double load_one(const std::byte* p, DType dtype, int64_t i) {
  switch (dtype) {
    case DType::kF64:
      return read<double>(p, i);
    case DType::kF32:
      return read<float>(p, i);
    case DType::kF16:
      return f16_bits_to_float(read<uint16_t>(p, i));
    case DType::kBF16:
      return bf16_bits_to_float(read<uint16_t>(p, i));
    case DType::kI64:
      return static_cast<double>(read<int64_t>(p, i));
    case DType::kI32:
      return read<int32_t>(p, i);
    case DType::kI16:
      return read<int16_t>(p, i);
    case DType::kI8:
      return read<int8_t>(p, i);
    case DType::kU8:
      return read<uint8_t>(p, i);
    case DType::kBool:
      return read<uint8_t>(p, i) != 0 ? 1.0 : 0.0;
    default:
      break;
  }
  throw_error(ErrorCategory::kInvalidArgument, "the reference cannot read ", dtype_name(dtype),
              " tensors");
}

// Float -> int64 as torch's casts do on x86: truncation; NaN and out-of-range give INT64_MIN
// (what cvttsd2si yields), which then wraps to the narrower type.
int64_t float_to_i64(double v) {
  if (!(v > -9.2233720368547758e18 && v < 9.2233720368547758e18)) return INT64_MIN;
  return static_cast<int64_t>(v);
}

}  // namespace

int64_t wrap_to(DType dtype, int64_t v) {
  switch (dtype) {
    case DType::kI32:
      return static_cast<int32_t>(v);
    case DType::kI16:
      return static_cast<int16_t>(v);
    case DType::kI8:
      return static_cast<int8_t>(v);
    case DType::kU8:
      return static_cast<uint8_t>(v);
    case DType::kBool:
      return v != 0;
    default:
      return v;
  }
}

double round_to(DType dtype, double v) {
  switch (dtype) {
    case DType::kF32:
      return static_cast<float>(v);
    case DType::kF16:
      return f16_bits_to_float(float_to_f16_bits(static_cast<float>(v)));
    case DType::kBF16:
      return bf16_bits_to_float(float_to_bf16_bits(static_cast<float>(v)));
    default:
      return v;
  }
}

std::vector<double> load(const Tensor& t) {
  auto bytes = raw(t);
  std::vector<double> out(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) out[i] = load_one(bytes.data(), t.dtype(), i);
  return out;
}

std::vector<int64_t> load_i64(const Tensor& t) {
  auto bytes = raw(t);
  std::vector<int64_t> out(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (t.dtype() == DType::kI64)
      out[i] = read<int64_t>(bytes.data(), i);
    else if (is_floating(t.dtype()))
      out[i] = float_to_i64(load_one(bytes.data(), t.dtype(), i));
    else
      out[i] = static_cast<int64_t>(load_one(bytes.data(), t.dtype(), i));
  }
  return out;
}

void store(const Tensor& out, const std::vector<double>& values) {
  FS_ASSERT(static_cast<int64_t>(values.size()) == out.numel());
  if (!is_floating(out.dtype()) && out.dtype() != DType::kBool) {
    std::vector<int64_t> ints(values.size());
    for (size_t i = 0; i < values.size(); ++i) ints[i] = float_to_i64(values[i]);
    store_i64(out, ints);
    return;
  }
  std::vector<std::byte> bytes(out.nbytes());
  std::byte* p = bytes.data();
  for (size_t k = 0; k < values.size(); ++k) {
    auto i = static_cast<int64_t>(k);
    double v = values[k];
    switch (out.dtype()) {
      case DType::kF64:
        write<double>(p, i, v);
        break;
      case DType::kF32:
        write<float>(p, i, static_cast<float>(v));
        break;
      case DType::kF16:
        write<uint16_t>(p, i, float_to_f16_bits(static_cast<float>(v)));
        break;
      case DType::kBF16:
        write<uint16_t>(p, i, float_to_bf16_bits(static_cast<float>(v)));
        break;
      default:
        write<uint8_t>(p, i, v != 0 ? 1 : 0);
        break;  // bool: NaN != 0 is true
    }
  }
  Tensor target = out;  // a handle: writing through a copy writes the same storage
  if (!bytes.empty()) target.copy_from_host(bytes.data(), bytes.size());
}

void store_i64(const Tensor& out, const std::vector<int64_t>& values) {
  FS_ASSERT(static_cast<int64_t>(values.size()) == out.numel());
  if (is_floating(out.dtype())) {
    std::vector<double> d(values.begin(), values.end());
    store(out, d);
    return;
  }
  std::vector<std::byte> bytes(out.nbytes());
  std::byte* p = bytes.data();
  for (size_t k = 0; k < values.size(); ++k) {
    auto i = static_cast<int64_t>(k);
    int64_t v = values[k];
    switch (out.dtype()) {
      case DType::kI64:
        write<int64_t>(p, i, v);
        break;
      case DType::kI32:
        write<int32_t>(p, i, static_cast<int32_t>(v));
        break;
      case DType::kI16:
        write<int16_t>(p, i, static_cast<int16_t>(v));
        break;
      case DType::kI8:
        write<int8_t>(p, i, static_cast<int8_t>(v));
        break;
      case DType::kU8:
        write<uint8_t>(p, i, static_cast<uint8_t>(v));
        break;
      case DType::kBool:
        write<uint8_t>(p, i, v != 0 ? 1 : 0);
        break;
      default:
        FS_ASSERT(false);
    }
  }
  Tensor target = out;  // a handle: writing through a copy writes the same storage
  if (!bytes.empty()) target.copy_from_host(bytes.data(), bytes.size());
}

Shape row_major_strides(const Shape& shape) {
  Shape s(shape.size());
  int64_t acc = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

BroadcastIndex::BroadcastIndex(const Shape& shape, const Shape& out_shape)
    : out_shape_(out_shape), strides_(out_shape.size(), 0) {
  Shape in_strides = row_major_strides(shape);
  size_t lead = out_shape.size() - shape.size();
  for (size_t i = 0; i < shape.size(); ++i) strides_[lead + i] = shape[i] == 1 ? 0 : in_strides[i];
}

int64_t BroadcastIndex::operator()(int64_t out_index) const {
  int64_t in = 0;
  for (size_t i = out_shape_.size(); i-- > 0;) {
    int64_t coord = out_index % out_shape_[i];
    out_index /= out_shape_[i];
    in += coord * strides_[i];
  }
  return in;
}

ReductionPlan::ReductionPlan(const Shape& shape, const std::vector<int>& dims)
    : shape_(shape), strides_(row_major_strides(shape)) {
  for (int i = 0; i < static_cast<int>(shape.size()); ++i) {
    if (std::find(dims.begin(), dims.end(), i) != dims.end()) {
      reduced_.push_back(i);
      inner *= shape[i];
    } else {
      kept_.push_back(i);
      outer *= shape[i];
    }
  }
}

std::vector<int64_t> ReductionPlan::indices(int64_t o) const {
  int64_t base = 0;
  for (size_t k = kept_.size(); k-- > 0;) {
    int d = kept_[k];
    base += (o % shape_[d]) * strides_[d];
    o /= shape_[d];
  }
  std::vector<int64_t> out(static_cast<size_t>(inner));
  for (int64_t r = 0; r < inner; ++r) {
    int64_t rem = r, off = base;
    for (size_t k = reduced_.size(); k-- > 0;) {
      int d = reduced_[k];
      off += (rem % shape_[d]) * strides_[d];
      rem /= shape_[d];
    }
    out[r] = off;
  }
  return out;
}

}  // namespace flagstone::ops::ref

namespace flagstone::ops::ref {

std::vector<std::byte> load_raw(const Tensor& t) {
  return raw(t);
}

void store_raw(const Tensor& out, const std::vector<std::byte>& bytes) {
  FS_ASSERT(bytes.size() == out.nbytes());
  Tensor target = out;  // a handle: writing through a copy writes the same storage
  if (!bytes.empty()) target.copy_from_host(bytes.data(), bytes.size());
}

std::vector<std::byte> encode(DType dtype, double value) {
  Tensor one = Tensor::empty({1}, dtype);
  store(one, {value});
  return raw(one);
}

std::vector<std::byte> gather_elements(const std::vector<std::byte>& src, size_t element_bytes,
                                       const std::vector<int64_t>& map,
                                       const std::vector<std::byte>& fill) {
  std::vector<std::byte> out(map.size() * element_bytes);
  for (size_t i = 0; i < map.size(); ++i) {
    const std::byte* from =
        map[i] >= 0 ? &src[static_cast<size_t>(map[i]) * element_bytes] : fill.data();
    std::memcpy(&out[i * element_bytes], from, element_bytes);
  }
  return out;
}

}  // namespace flagstone::ops::ref
