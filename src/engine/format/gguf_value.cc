// GGUF metadata values and the table of GGML tensor types.
#include <cmath>
#include <cstring>

#include "flagstone/base/error.h"
#include "flagstone/engine/format/gguf.h"
#include "gguf_internal.h"

namespace flagstone::engine::format {

namespace {

template <typename T>
struct GgufTypeOf;
template <>
struct GgufTypeOf<uint8_t> {
  static constexpr GgufValueType value = GgufValueType::kUint8;
};
template <>
struct GgufTypeOf<int8_t> {
  static constexpr GgufValueType value = GgufValueType::kInt8;
};
template <>
struct GgufTypeOf<uint16_t> {
  static constexpr GgufValueType value = GgufValueType::kUint16;
};
template <>
struct GgufTypeOf<int16_t> {
  static constexpr GgufValueType value = GgufValueType::kInt16;
};
template <>
struct GgufTypeOf<uint32_t> {
  static constexpr GgufValueType value = GgufValueType::kUint32;
};
template <>
struct GgufTypeOf<int32_t> {
  static constexpr GgufValueType value = GgufValueType::kInt32;
};
template <>
struct GgufTypeOf<float> {
  static constexpr GgufValueType value = GgufValueType::kFloat32;
};
template <>
struct GgufTypeOf<bool> {
  static constexpr GgufValueType value = GgufValueType::kBool;
};
template <>
struct GgufTypeOf<uint64_t> {
  static constexpr GgufValueType value = GgufValueType::kUint64;
};
template <>
struct GgufTypeOf<int64_t> {
  static constexpr GgufValueType value = GgufValueType::kInt64;
};
template <>
struct GgufTypeOf<double> {
  static constexpr GgufValueType value = GgufValueType::kFloat64;
};

template <typename T>
void append_le(std::vector<std::byte>* out, T value) {
  unsigned char bytes[sizeof(T)];
  if constexpr (std::is_same_v<T, bool>) {
    bytes[0] = value ? 1 : 0;
  } else {
    std::memcpy(bytes, &value, sizeof(T));  // the build targets little-endian hosts only
  }
  for (unsigned char b : bytes) out->push_back(static_cast<std::byte>(b));
}

template <typename T>
T read_le(const std::byte* p) {
  T value;
  std::memcpy(&value, p, sizeof(T));
  return value;
}

bool is_integer_type(GgufValueType type) {
  switch (type) {
    case GgufValueType::kUint8:
    case GgufValueType::kInt8:
    case GgufValueType::kUint16:
    case GgufValueType::kInt16:
    case GgufValueType::kUint32:
    case GgufValueType::kInt32:
    case GgufValueType::kUint64:
    case GgufValueType::kInt64:
    case GgufValueType::kBool:
      return true;
    default:
      return false;
  }
}

// Every GGML type id up to the newest this build knows; gaps are ids removed from GGML.
struct GgmlTypeRow {
  uint32_t id;
  GgmlTypeInfo info;
};
const GgmlTypeRow kGgmlTypes[] = {
    {0, {"F32", 1, 4, DType::kF32}},          {1, {"F16", 1, 2, DType::kF16}},
    {2, {"Q4_0", 32, 18, DType::kQ4_0}},      {3, {"Q4_1", 32, 20, std::nullopt}},
    {6, {"Q5_0", 32, 22, std::nullopt}},      {7, {"Q5_1", 32, 24, std::nullopt}},
    {8, {"Q8_0", 32, 34, DType::kQ8_0}},      {9, {"Q8_1", 32, 36, std::nullopt}},
    {10, {"Q2_K", 256, 84, std::nullopt}},    {11, {"Q3_K", 256, 110, std::nullopt}},
    {12, {"Q4_K", 256, 144, DType::kQ4_K}},   {13, {"Q5_K", 256, 176, std::nullopt}},
    {14, {"Q6_K", 256, 210, DType::kQ6_K}},   {15, {"Q8_K", 256, 292, std::nullopt}},
    {16, {"IQ2_XXS", 256, 66, std::nullopt}}, {17, {"IQ2_XS", 256, 74, std::nullopt}},
    {18, {"IQ3_XXS", 256, 98, std::nullopt}}, {19, {"IQ1_S", 256, 50, std::nullopt}},
    {20, {"IQ4_NL", 32, 18, std::nullopt}},   {21, {"IQ3_S", 256, 110, std::nullopt}},
    {22, {"IQ2_S", 256, 82, std::nullopt}},   {23, {"IQ4_XS", 256, 136, std::nullopt}},
    {24, {"I8", 1, 1, DType::kI8}},           {25, {"I16", 1, 2, DType::kI16}},
    {26, {"I32", 1, 4, DType::kI32}},         {27, {"I64", 1, 8, DType::kI64}},
    {28, {"F64", 1, 8, DType::kF64}},         {29, {"IQ1_M", 256, 56, std::nullopt}},
    {30, {"BF16", 1, 2, DType::kBF16}},       {34, {"TQ1_0", 256, 54, std::nullopt}},
    {35, {"TQ2_0", 256, 66, std::nullopt}},   {39, {"MXFP4", 32, 17, std::nullopt}},
};

}  // namespace

size_t gguf_scalar_size(GgufValueType type) {
  switch (type) {
    case GgufValueType::kUint8:
    case GgufValueType::kInt8:
    case GgufValueType::kBool:
      return 1;
    case GgufValueType::kUint16:
    case GgufValueType::kInt16:
      return 2;
    case GgufValueType::kUint32:
    case GgufValueType::kInt32:
    case GgufValueType::kFloat32:
      return 4;
    case GgufValueType::kUint64:
    case GgufValueType::kInt64:
    case GgufValueType::kFloat64:
      return 8;
    case GgufValueType::kString:
    case GgufValueType::kArray:
      return 0;
  }
  return 0;
}

bool gguf_value_type_valid(uint32_t type) {
  return type <= 12;
}

std::string_view gguf_value_type_name(GgufValueType type) {
  switch (type) {
    case GgufValueType::kUint8:
      return "u8";
    case GgufValueType::kInt8:
      return "i8";
    case GgufValueType::kUint16:
      return "u16";
    case GgufValueType::kInt16:
      return "i16";
    case GgufValueType::kUint32:
      return "u32";
    case GgufValueType::kInt32:
      return "i32";
    case GgufValueType::kFloat32:
      return "f32";
    case GgufValueType::kBool:
      return "bool";
    case GgufValueType::kString:
      return "string";
    case GgufValueType::kArray:
      return "array";
    case GgufValueType::kUint64:
      return "u64";
    case GgufValueType::kInt64:
      return "i64";
    case GgufValueType::kFloat64:
      return "f64";
  }
  return "unknown";
}

const GgmlTypeInfo* ggml_type_info(uint32_t type) {
  for (const GgmlTypeRow& row : kGgmlTypes) {
    if (row.id == type) return &row.info;
  }
  return nullptr;
}

uint32_t ggml_type_of(DType dtype) {
  for (const GgmlTypeRow& row : kGgmlTypes) {
    if (row.info.dtype == dtype) return row.id;
  }
  throw_error(ErrorCategory::kUnsupported, "dtype ", dtype_name(dtype),
              " has no GGML type and cannot be stored in GGUF");
}

template <typename T>
GgufValue GgufValue::scalar(T value) {
  GgufValue result;
  result.type_ = result.element_type_ = GgufTypeOf<T>::value;
  result.count_ = 1;
  append_le(&result.raw_, value);
  return result;
}

template <typename T>
GgufValue GgufValue::array(const std::vector<T>& values) {
  GgufValue result;
  result.type_ = GgufValueType::kArray;
  result.element_type_ = GgufTypeOf<T>::value;
  result.count_ = values.size();
  result.raw_.reserve(values.size() * sizeof(T));
  for (const T& value : values) append_le(&result.raw_, static_cast<T>(value));
  return result;
}

#define FS_GGUF_INSTANTIATE(T)                      \
  template GgufValue GgufValue::scalar<T>(T value); \
  template GgufValue GgufValue::array<T>(const std::vector<T>& values);
FS_GGUF_INSTANTIATE(uint8_t)
FS_GGUF_INSTANTIATE(int8_t)
FS_GGUF_INSTANTIATE(uint16_t)
FS_GGUF_INSTANTIATE(int16_t)
FS_GGUF_INSTANTIATE(uint32_t)
FS_GGUF_INSTANTIATE(int32_t)
FS_GGUF_INSTANTIATE(float)
FS_GGUF_INSTANTIATE(bool)
FS_GGUF_INSTANTIATE(uint64_t)
FS_GGUF_INSTANTIATE(int64_t)
FS_GGUF_INSTANTIATE(double)
#undef FS_GGUF_INSTANTIATE

GgufValue GgufValue::string(std::string value) {
  GgufValue result;
  result.type_ = result.element_type_ = GgufValueType::kString;
  result.count_ = 1;
  result.strings_.push_back(std::move(value));
  return result;
}

GgufValue GgufValue::string_array(std::vector<std::string> values) {
  GgufValue result;
  result.type_ = GgufValueType::kArray;
  result.element_type_ = GgufValueType::kString;
  result.count_ = values.size();
  result.strings_ = std::move(values);
  return result;
}

GgufValue GgufValue::from_raw(GgufValueType type, GgufValueType element_type, size_t count,
                              std::vector<std::byte> raw, std::vector<std::string> strings) {
  GgufValue result;
  result.type_ = type;
  result.element_type_ = element_type;
  result.count_ = count;
  result.raw_ = std::move(raw);
  result.strings_ = std::move(strings);
  FS_ASSERT(element_type == GgufValueType::kString
                ? result.strings_.size() == count
                : result.raw_.size() == count * gguf_scalar_size(element_type));
  return result;
}

std::string GgufValue::type_name() const {
  if (!is_array()) return std::string(gguf_value_type_name(type_));
  return "array[" + std::string(gguf_value_type_name(element_type_)) + "]";
}

int64_t GgufValue::element_as_int(size_t index) const {
  const std::byte* p = raw_.data() + index * gguf_scalar_size(element_type_);
  switch (element_type_) {
    case GgufValueType::kUint8:
      return read_le<uint8_t>(p);
    case GgufValueType::kInt8:
      return read_le<int8_t>(p);
    case GgufValueType::kUint16:
      return read_le<uint16_t>(p);
    case GgufValueType::kInt16:
      return read_le<int16_t>(p);
    case GgufValueType::kUint32:
      return read_le<uint32_t>(p);
    case GgufValueType::kInt32:
      return read_le<int32_t>(p);
    case GgufValueType::kBool:
      return read_le<uint8_t>(p) != 0;
    case GgufValueType::kInt64:
      return read_le<int64_t>(p);
    case GgufValueType::kUint64: {
      uint64_t value = read_le<uint64_t>(p);
      FS_CHECK(value <= static_cast<uint64_t>(INT64_MAX), kInvalidArgument, "GGUF u64 value ",
               value, " does not fit in int64");
      return static_cast<int64_t>(value);
    }
    default:
      throw_error(ErrorCategory::kInvalidArgument, "GGUF value of type ", type_name(),
                  " read as an integer");
  }
}

double GgufValue::element_as_float(size_t index) const {
  const std::byte* p = raw_.data() + index * gguf_scalar_size(element_type_);
  switch (element_type_) {
    case GgufValueType::kFloat32:
      return read_le<float>(p);
    case GgufValueType::kFloat64:
      return read_le<double>(p);
    case GgufValueType::kUint64:
      return static_cast<double>(read_le<uint64_t>(p));
    default:
      if (is_integer_type(element_type_) && element_type_ != GgufValueType::kBool) {
        return static_cast<double>(element_as_int(index));
      }
      throw_error(ErrorCategory::kInvalidArgument, "GGUF value of type ", type_name(),
                  " read as a number");
  }
}

int64_t GgufValue::as_int() const {
  FS_CHECK(!is_array() && is_integer_type(type_), kInvalidArgument, "GGUF value of type ",
           type_name(), " read as an integer");
  return element_as_int(0);
}

uint64_t GgufValue::as_uint() const {
  FS_CHECK(!is_array() && is_integer_type(type_), kInvalidArgument, "GGUF value of type ",
           type_name(), " read as an unsigned integer");
  if (type_ == GgufValueType::kUint64) return read_le<uint64_t>(raw_.data());
  int64_t value = element_as_int(0);
  FS_CHECK(value >= 0, kInvalidArgument, "GGUF value ", value, " is negative");
  return static_cast<uint64_t>(value);
}

double GgufValue::as_float() const {
  FS_CHECK(!is_array() && type_ != GgufValueType::kString && type_ != GgufValueType::kBool,
           kInvalidArgument, "GGUF value of type ", type_name(), " read as a number");
  return element_as_float(0);
}

bool GgufValue::as_bool() const {
  FS_CHECK(type_ == GgufValueType::kBool, kInvalidArgument, "GGUF value of type ", type_name(),
           " read as a bool");
  return std::to_integer<uint8_t>(raw_[0]) != 0;
}

const std::string& GgufValue::as_string() const {
  FS_CHECK(type_ == GgufValueType::kString, kInvalidArgument, "GGUF value of type ", type_name(),
           " read as a string");
  return strings_[0];
}

std::vector<int64_t> GgufValue::as_int_array() const {
  FS_CHECK(is_array() && is_integer_type(element_type_), kInvalidArgument, "GGUF value of type ",
           type_name(), " read as an integer array");
  std::vector<int64_t> out(count_);
  for (size_t i = 0; i < count_; ++i) out[i] = element_as_int(i);
  return out;
}

std::vector<double> GgufValue::as_float_array() const {
  FS_CHECK(is_array() && element_type_ != GgufValueType::kString &&
               element_type_ != GgufValueType::kBool,
           kInvalidArgument, "GGUF value of type ", type_name(), " read as a number array");
  std::vector<double> out(count_);
  for (size_t i = 0; i < count_; ++i) out[i] = element_as_float(i);
  return out;
}

const std::vector<std::string>& GgufValue::as_string_array() const {
  FS_CHECK(is_array() && element_type_ == GgufValueType::kString, kInvalidArgument,
           "GGUF value of type ", type_name(), " read as a string array");
  return strings_;
}

}  // namespace flagstone::engine::format
