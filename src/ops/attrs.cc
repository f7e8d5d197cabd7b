// Typed access to op attributes with errors that name the attribute and the kind expected.
#include "flagstone/ops/attrs.h"

#include <sstream>

#include "flagstone/base/error.h"

namespace flagstone::ops {
namespace {

const char* kind_name(const AttrValue::Variant& v) {
  switch (v.index()) {
    case 0:
      return "bool";
    case 1:
      return "int";
    case 2:
      return "float";
    case 3:
      return "string";
    case 4:
      return "int list";
    default:
      return "float list";
  }
}

[[noreturn]] void wrong_kind(std::string_view name, const AttrValue& value, const char* want) {
  throw_error(ErrorCategory::kInvalidArgument, "attribute '", name, "' is a ",
              kind_name(value.value()), " (", value.to_string(), "), expected ", want);
}

}  // namespace

std::string AttrValue::to_string() const {
  std::ostringstream out;
  std::visit(
      [&out](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, bool>) {
          out << (v ? "true" : "false");
        } else if constexpr (std::is_same_v<T, std::string>) {
          out << '"' << v << '"';
        } else if constexpr (std::is_same_v<T, int64_t> || std::is_same_v<T, double>) {
          out << v;
        } else {
          out << '[';
          for (size_t i = 0; i < v.size(); ++i) out << (i ? ", " : "") << v[i];
          out << ']';
        }
      },
      value_);
  return out.str();
}

const AttrValue* Attrs::find(std::string_view name) const {
  auto it = values_.find(std::string(name));
  return it == values_.end() ? nullptr : &it->second;
}

int64_t Attrs::get_int(std::string_view name, int64_t fallback) const {
  const AttrValue* v = find(name);
  if (!v) return fallback;
  if (auto* i = std::get_if<int64_t>(&v->value())) return *i;
  if (auto* b = std::get_if<bool>(&v->value())) return *b ? 1 : 0;
  wrong_kind(name, *v, "an int");
}

double Attrs::get_double(std::string_view name, double fallback) const {
  const AttrValue* v = find(name);
  if (!v) return fallback;
  if (auto* d = std::get_if<double>(&v->value())) return *d;
  if (auto* i = std::get_if<int64_t>(&v->value())) return static_cast<double>(*i);
  wrong_kind(name, *v, "a number");
}

bool Attrs::get_bool(std::string_view name, bool fallback) const {
  const AttrValue* v = find(name);
  if (!v) return fallback;
  if (auto* b = std::get_if<bool>(&v->value())) return *b;
  if (auto* i = std::get_if<int64_t>(&v->value())) return *i != 0;
  wrong_kind(name, *v, "a bool");
}

std::string Attrs::get_string(std::string_view name, std::string_view fallback) const {
  const AttrValue* v = find(name);
  if (!v) return std::string(fallback);
  if (auto* s = std::get_if<std::string>(&v->value())) return *s;
  wrong_kind(name, *v, "a string");
}

std::vector<int64_t> Attrs::get_ints(std::string_view name, std::vector<int64_t> fallback) const {
  const AttrValue* v = find(name);
  if (!v) return fallback;
  if (auto* l = std::get_if<std::vector<int64_t>>(&v->value())) return *l;
  if (auto* i = std::get_if<int64_t>(&v->value())) return {*i};
  if (auto* d = std::get_if<std::vector<double>>(&v->value()); d && d->empty()) return {};
  wrong_kind(name, *v, "an int list");
}

std::vector<double> Attrs::get_doubles(std::string_view name, std::vector<double> fallback) const {
  const AttrValue* v = find(name);
  if (!v) return fallback;
  if (auto* l = std::get_if<std::vector<double>>(&v->value())) return *l;
  if (auto* l = std::get_if<std::vector<int64_t>>(&v->value()))
    return std::vector<double>(l->begin(), l->end());
  if (auto* d = std::get_if<double>(&v->value())) return {*d};
  if (auto* i = std::get_if<int64_t>(&v->value())) return {static_cast<double>(*i)};
  wrong_kind(name, *v, "a number list");
}

int64_t Attrs::int_at(std::string_view name) const {
  FS_CHECK(has(name), kInvalidArgument, "missing required attribute '", name, "'");
  return get_int(name, 0);
}

double Attrs::double_at(std::string_view name) const {
  FS_CHECK(has(name), kInvalidArgument, "missing required attribute '", name, "'");
  return get_double(name, 0);
}

std::string Attrs::to_string() const {
  std::string out = "{";
  for (const auto& [name, value] : values_) {
    if (out.size() > 1) out += ", ";
    out += name + "=" + value.to_string();
  }
  return out + "}";
}

}  // namespace flagstone::ops
