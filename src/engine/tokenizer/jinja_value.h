// Values of the chat-template interpreter: JSON data (insertion-ordered, as Python dicts) plus
// Jinja's undefined, namespaces and bound methods; with Python's str(), repr and json.dumps.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace flagstone::engine::jinja {

using Json = nlohmann::ordered_json;

class Value {
 public:
  enum class Kind { kUndefined, kData, kNamespace, kMethod, kFunction };

  Value() = default;                                                // undefined
  Value(Json data) : kind_(Kind::kData), data_(std::move(data)) {}  // NOLINT: implicit by design
  static Value undefined(std::string name = "") {
    Value v;
    v.name_ = std::move(name);
    return v;
  }
  static Value make_namespace(Json fields) {
    Value v;
    v.kind_ = Kind::kNamespace;
    v.ns_ = std::make_shared<Json>(std::move(fields));
    return v;
  }
  // A method bound to its object (e.g. "abc".strip) or a global function (e.g. range).
  static Value method(Json self, std::string name) {
    Value v(std::move(self));
    v.kind_ = Kind::kMethod;
    v.name_ = std::move(name);
    return v;
  }
  static Value function(std::string name) {
    Value v;
    v.kind_ = Kind::kFunction;
    v.name_ = std::move(name);
    return v;
  }

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_data() const { return kind_ == Kind::kData; }
  // The JSON payload; for a namespace its fields, for a method its bound object.
  const Json& data() const { return kind_ == Kind::kNamespace ? *ns_ : data_; }
  Json& namespace_fields() const { return *ns_; }
  const std::string& name() const { return name_; }

  bool truthy() const;
  // Python's type name, for error messages.
  std::string type_name() const;

 private:
  Kind kind_ = Kind::kUndefined;
  Json data_;
  std::shared_ptr<Json> ns_;
  std::string name_;
};

// Python str() of a value as Jinja prints it (None, True, 1.0, ['a', 1], {'k': 'v'}).
std::string to_str(const Value& v);
std::string py_str(const Json& j);
std::string py_repr(const Json& j);
// Python json.dumps(j, ensure_ascii=False, indent=indent, sort_keys=sort_keys), which is what
// transformers' tojson filter calls.
std::string py_json_dumps(const Json& j, std::optional<int> indent, bool sort_keys);
bool py_truthy(const Json& j);
// Python ==, with 1 == 1.0 and True == 1.
bool py_equal(const Json& a, const Json& b);

}  // namespace flagstone::engine::jinja
