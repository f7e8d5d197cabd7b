// Attributes of an op call: named scalars, strings and integer lists ("dim", "eps", "causal").
// Typed getters throw a clear error naming the op and attribute when a value has the wrong kind.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

namespace flagstone::ops {

class AttrValue {
 public:
  using Variant =
      std::variant<bool, int64_t, double, std::string, std::vector<int64_t>, std::vector<double>>;
  AttrValue() : value_(int64_t{0}) {}
  AttrValue(bool v) : value_(v) {}  // NOLINT: implicit by design, attrs read like literals
  template <typename T,
            std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>, int> = 0>
  AttrValue(T v) : value_(static_cast<int64_t>(v)) {}                               // NOLINT
  AttrValue(float v) : value_(static_cast<double>(v)) {}                            // NOLINT
  AttrValue(double v) : value_(v) {}                                                // NOLINT
  AttrValue(const char* v) : value_(std::string(v)) {}                              // NOLINT
  AttrValue(std::string v) : value_(std::move(v)) {}                                // NOLINT
  AttrValue(std::string_view v) : value_(std::string(v)) {}                         // NOLINT
  AttrValue(std::vector<int64_t> v) : value_(std::move(v)) {}                       // NOLINT
  AttrValue(std::initializer_list<int64_t> v) : value_(std::vector<int64_t>(v)) {}  // NOLINT
  AttrValue(std::vector<double> v) : value_(std::move(v)) {}                        // NOLINT

  const Variant& value() const { return value_; }
  std::string to_string() const;

 private:
  Variant value_;
};

class Attrs {
 public:
  Attrs() = default;
  Attrs(std::initializer_list<std::pair<const std::string, AttrValue>> items) : values_(items) {}

  bool has(std::string_view name) const { return values_.find(std::string(name)) != values_.end(); }
  Attrs& set(const std::string& name, AttrValue value) {
    values_[name] = std::move(value);
    return *this;
  }
  // Getters with defaults; an attribute of the wrong kind throws kInvalidArgument. Integers are
  // accepted where doubles are expected, and a single integer where a list is expected.
  int64_t get_int(std::string_view name, int64_t fallback) const;
  double get_double(std::string_view name, double fallback) const;
  bool get_bool(std::string_view name, bool fallback) const;
  std::string get_string(std::string_view name, std::string_view fallback) const;
  std::vector<int64_t> get_ints(std::string_view name, std::vector<int64_t> fallback) const;
  std::vector<double> get_doubles(std::string_view name, std::vector<double> fallback) const;
  // Required variants: throw kInvalidArgument naming the attribute when it is missing.
  int64_t int_at(std::string_view name) const;
  double double_at(std::string_view name) const;

  const std::map<std::string, AttrValue>& items() const { return values_; }
  std::string to_string() const;

 private:
  const AttrValue* find(std::string_view name) const;
  std::map<std::string, AttrValue> values_;
};

}  // namespace flagstone::ops
