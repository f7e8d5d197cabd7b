// Builtins of the chat-template interpreter: the filters, tests, str/dict methods and global
// functions that the chat templates of the supported families (and common variants) call.
#include <algorithm>
#include <ctime>

#include "jinja_interp.h"

namespace flagstone::engine::jinja {
namespace {

[[noreturn]] void fail(const std::string& m) {
  throw EvalError{m};
}

const std::string& need_string(const Value& v, const std::string& what) {
  if (!v.is_data() || !v.data().is_string())
    fail(what + " expects a string, got '" + v.type_name() + "'");
  return v.data().get_ref<const std::string&>();
}

bool is_py_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// Python str.strip family; `chars` null means whitespace.
std::string strip(const std::string& s, const Value* chars, bool left, bool right) {
  auto drop = [&](char c) {
    if (!chars || (chars->is_data() && chars->data().is_null())) return is_py_space(c);
    return need_string(*chars, "strip").find(c) != std::string::npos;
  };
  std::size_t b = 0, e = s.size();
  if (left)
    while (b < e && drop(s[b])) ++b;
  if (right)
    while (e > b && drop(s[e - 1])) --e;
  return s.substr(b, e - b);
}

Json split(const std::string& s, const Value* sep, const Value* maxsplit_v) {
  std::int64_t maxsplit = -1;
  if (maxsplit_v && maxsplit_v->is_data() && maxsplit_v->data().is_number_integer())
    maxsplit = maxsplit_v->data().get<std::int64_t>();
  Json out = Json::array();
  if (!sep || (sep->is_data() && sep->data().is_null())) {
    std::size_t i = 0;
    while (true) {
      while (i < s.size() && is_py_space(s[i])) ++i;
      if (i >= s.size()) break;
      if (maxsplit >= 0 && static_cast<std::int64_t>(out.size()) == maxsplit) {
        std::string rest = s.substr(i);
        while (!rest.empty() && is_py_space(rest.back())) rest.pop_back();
        out.push_back(rest);
        break;
      }
      std::size_t j = i;
      while (j < s.size() && !is_py_space(s[j])) ++j;
      out.push_back(s.substr(i, j - i));
      i = j;
    }
    return out;
  }
  const std::string& d = need_string(*sep, "split");
  if (d.empty()) fail("split: empty separator");
  std::size_t last = 0;
  for (std::size_t p = s.find(d); p != std::string::npos; p = s.find(d, last)) {
    if (maxsplit >= 0 && static_cast<std::int64_t>(out.size()) == maxsplit) break;
    out.push_back(s.substr(last, p - last));
    last = p + d.size();
  }
  out.push_back(s.substr(last));
  return out;
}

std::string replace_all(const std::string& s, const std::string& from, const std::string& to,
                        std::int64_t count) {
  if (from.empty()) return s;
  std::string out;
  std::size_t last = 0;
  std::int64_t done = 0;
  for (std::size_t p = s.find(from); p != std::string::npos && (count < 0 || done < count);
       p = s.find(from, last), ++done) {
    out.append(s, last, p - last);
    out += to;
    last = p + from.size();
  }
  out.append(s, last, std::string::npos);
  return out;
}

std::string ascii_case(std::string s, bool upper) {
  for (char& c : s)
    c = static_cast<char>(upper ? std::toupper(static_cast<unsigned char>(c))
                                : std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool affix(const std::string& s, const Value& arg, bool prefix) {
  auto one = [&](const std::string& a) {
    if (a.size() > s.size()) return false;
    return prefix ? s.compare(0, a.size(), a) == 0
                  : s.compare(s.size() - a.size(), a.size(), a) == 0;
  };
  if (arg.is_data() && arg.data().is_array()) {
    for (const auto& e : arg.data())
      if (e.is_string() && one(e.get<std::string>())) return true;
    return false;
  }
  return one(need_string(arg, prefix ? "startswith" : "endswith"));
}

std::int64_t length(const Value& v) {
  if (v.is_undefined()) return 0;
  const Json& d = v.data();
  if (d.is_string()) {
    std::int64_t n = 0;  // code points, as Python's len(str)
    for (unsigned char c : d.get_ref<const std::string&>()) n += (c & 0xC0) != 0x80;
    return n;
  }
  if (d.is_array() || d.is_object()) return static_cast<std::int64_t>(d.size());
  fail("object of type '" + v.type_name() + "' has no len()");
}

Json items_of(const Json& d) {
  Json out = Json::array();
  for (auto it = d.begin(); it != d.end(); ++it) out.push_back(Json::array({it.key(), it.value()}));
  return out;
}

Value call_method(const Value& m, const CallArgs& a) {
  const Json& self = m.data();
  const std::string& name = m.name();
  if (self.is_string()) {
    const std::string& s = self.get_ref<const std::string&>();
    if (name == "strip") return Json(strip(s, a.get(0, "chars"), true, true));
    if (name == "lstrip") return Json(strip(s, a.get(0, "chars"), true, false));
    if (name == "rstrip") return Json(strip(s, a.get(0, "chars"), false, true));
    if (name == "split") return split(s, a.get(0, "sep"), a.get(1, "maxsplit"));
    if (name == "upper") return Json(ascii_case(s, true));
    if (name == "lower") return Json(ascii_case(s, false));
    if (name == "startswith" || name == "endswith") {
      const Value* arg = a.get(0, "prefix");
      if (!arg) fail(name + "() takes one argument");
      return Json(affix(s, *arg, name == "startswith"));
    }
    if (name == "replace") {
      const Value* from = a.get(0, "old");
      const Value* to = a.get(1, "new");
      if (!from || !to) fail("replace() takes two arguments");
      const Value* count = a.get(2, "count");
      return Json(replace_all(
          s, need_string(*from, "replace"), need_string(*to, "replace"),
          count && count->data().is_number_integer() ? count->data().get<std::int64_t>() : -1));
    }
    if (name == "title" || name == "capitalize") {
      std::string out = s;
      bool start = true;
      for (std::size_t i = 0; i < out.size(); ++i) {
        unsigned char c = static_cast<unsigned char>(out[i]);
        bool alpha = std::isalpha(c);
        if (name == "capitalize")
          out[i] = static_cast<char>(i == 0 ? std::toupper(c) : std::tolower(c));
        else
          out[i] = static_cast<char>(alpha ? (start ? std::toupper(c) : std::tolower(c)) : c);
        start = !alpha;
      }
      return Json(out);
    }
    if (name == "join") {
      const Value* list = a.get(0, "iterable");
      if (!list || !list->is_data() || !list->data().is_array()) fail("join() expects a list");
      std::string out;
      bool first = true;
      for (const auto& e : list->data()) {
        if (!first) out += s;
        first = false;
        out += py_str(e);
      }
      return Json(out);
    }
    if (name == "count") {
      const std::string& sub =
          need_string(a.positional.empty() ? Value() : a.positional[0], "count");
      if (sub.empty()) fail("count() of an empty string");
      std::int64_t n = 0;
      for (std::size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + sub.size()))
        ++n;
      return Json(n);
    }
    if (name == "find") {
      const std::string& sub =
          need_string(a.positional.empty() ? Value() : a.positional[0], "find");
      auto p = s.find(sub);
      return Json(p == std::string::npos ? std::int64_t{-1} : static_cast<std::int64_t>(p));
    }
  } else if (self.is_object()) {
    if (name == "items") return items_of(self);
    if (name == "keys" || name == "values") {
      Json out = Json::array();
      for (auto it = self.begin(); it != self.end(); ++it)
        out.push_back(name == "keys" ? Json(it.key()) : it.value());
      return out;
    }
    if (name == "get") {
      const Value* key = a.get(0, "key");
      if (!key) fail("get() takes a key");
      auto it = self.find(need_string(*key, "get"));
      if (it != self.end()) return *it;
      const Value* def = a.get(1, "default");
      return def ? *def : Value(Json());
    }
  }
  fail("'" + Value(self).type_name() + "' object has no method '" + name + "'");
}

const char* const kStringMethods[] = {"strip",      "lstrip",     "rstrip",   "split",   "upper",
                                      "lower",      "startswith", "endswith", "replace", "title",
                                      "capitalize", "join",       "count",    "find"};
const char* const kDictMethods[] = {"items", "keys", "values", "get"};

}  // namespace

Value get_attribute(const Value& object, const std::string& name) {
  if (object.is_undefined())
    fail("'" + (object.name().empty() ? std::string("value") : object.name()) +
         "' is undefined (while reading attribute '" + name + "')");
  if (object.kind() == Value::Kind::kNamespace) {
    auto it = object.data().find(name);
    return it != object.data().end() ? Value(*it) : Value::undefined(name);
  }
  if (!object.is_data()) return Value::undefined(name);
  const Json& d = object.data();
  // Python attributes (methods) come first, as in Jinja's getattr, then items.
  if (d.is_string())
    for (const char* m : kStringMethods)
      if (name == m) return Value::method(d, name);
  if (d.is_object()) {
    for (const char* m : kDictMethods)
      if (name == m) return Value::method(d, name);
    auto it = d.find(name);
    if (it != d.end()) return *it;
  }
  return Value::undefined(name);
}

Value call(const Value& callee, const CallArgs& a) {
  if (callee.kind() == Value::Kind::kMethod) return call_method(callee, a);
  if (callee.kind() != Value::Kind::kFunction)
    fail("'" +
         (callee.is_undefined() && !callee.name().empty() ? callee.name() : callee.type_name()) +
         "' is not callable");
  const std::string& name = callee.name();
  if (name == "raise_exception") {
    const Value* msg = a.get(0, "message");
    throw RaisedError{msg ? to_str(*msg) : std::string("(no message)")};
  }
  if (name == "namespace" || name == "dict") {
    Json fields = Json::object();
    for (const auto& p : a.positional)
      if (p.is_data() && p.data().is_object()) fields.update(p.data());
    for (const auto& [k, v] : a.keyword) fields[k] = v.is_undefined() ? Json() : v.data();
    return name == "namespace" ? Value::make_namespace(std::move(fields)) : Value(fields);
  }
  if (name == "range") {
    std::vector<std::int64_t> n;
    for (const auto& p : a.positional) {
      if (!p.is_data() || !p.data().is_number_integer()) fail("range() expects integers");
      n.push_back(p.data().get<std::int64_t>());
    }
    if (n.empty() || n.size() > 3) fail("range() takes 1 to 3 arguments");
    std::int64_t start = n.size() > 1 ? n[0] : 0, stop = n.size() > 1 ? n[1] : n[0];
    std::int64_t step = n.size() > 2 ? n[2] : 1;
    if (step == 0) fail("range() step must not be zero");
    Json out = Json::array();
    for (std::int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
      if (out.size() > 100000) fail("range() too large");
      out.push_back(i);
    }
    return out;
  }
  if (name == "strftime_now") {
    const Value* fmt = a.get(0, "format");
    std::time_t now = std::time(nullptr);
    std::tm tm{};
    localtime_r(&now, &tm);
    char buf[256];
    std::size_t len = std::strftime(
        buf, sizeof(buf), fmt ? need_string(*fmt, "strftime_now").c_str() : "%Y-%m-%d", &tm);
    return Json(std::string(buf, len));
  }
  fail("unknown function '" + name + "'");
}

bool apply_test(const std::string& name, const Value& v, const CallArgs& a) {
  const Json& d = v.data();
  bool data = v.is_data();
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return data && d.is_null();
  if (name == "string") return data && d.is_string();
  if (name == "number") return data && d.is_number();
  if (name == "integer") return data && d.is_number_integer();
  if (name == "float") return data && d.is_number_float();
  if (name == "boolean") return data && d.is_boolean();
  if (name == "true") return data && d.is_boolean() && d.get<bool>();
  if (name == "false") return data && d.is_boolean() && !d.get<bool>();
  if (name == "mapping") return (data && d.is_object()) || v.kind() == Value::Kind::kNamespace;
  if (name == "sequence" || name == "iterable")
    return data && (d.is_array() || d.is_string() || d.is_object());
  if (name == "callable")
    return v.kind() == Value::Kind::kMethod || v.kind() == Value::Kind::kFunction;
  if (name == "odd" || name == "even") {
    if (!data || !d.is_number_integer()) fail("test '" + name + "' expects an integer");
    return (d.get<std::int64_t>() % 2 != 0) == (name == "odd");
  }
  const Value* arg = a.get(0, "other");
  if (name == "divisibleby") {
    if (!arg || !data || !d.is_number_integer() || !arg->data().is_number_integer() ||
        arg->data().get<std::int64_t>() == 0)
      fail("divisibleby expects two integers");
    return d.get<std::int64_t>() % arg->data().get<std::int64_t>() == 0;
  }
  if (name == "eq" || name == "equalto" || name == "==" || name == "sameas") {
    if (!arg) fail("test '" + name + "' needs an argument");
    return data && arg->is_data() && py_equal(d, arg->data());
  }
  if (name == "ne" || name == "!=")
    return !(arg && data && arg->is_data() && py_equal(d, arg->data()));
  if (name == "in") {
    if (!arg || !arg->is_data()) fail("test 'in' needs a container");
    const Json& c = arg->data();
    if (c.is_array())
      return std::any_of(c.begin(), c.end(), [&](const Json& e) { return py_equal(e, d); });
    if (c.is_string())
      return d.is_string() && c.get<std::string>().find(d.get<std::string>()) != std::string::npos;
    if (c.is_object()) return d.is_string() && c.contains(d.get<std::string>());
    return false;
  }
  fail("unknown test '" + name + "'");
}

namespace {
// selectattr / rejectattr / map(attribute=...) read an attribute path such as "function.name".
Value attribute_path(const Json& item, const std::string& path) {
  Value v(item);
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t dot = path.find('.', start);
    std::string part =
        path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (v.is_undefined()) return v;
    if (v.data().is_array() && !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit)) {
      std::size_t i = std::stoul(part);
      v = i < v.data().size() ? Value(v.data()[i]) : Value::undefined(part);
    } else {
      v = v.data().is_object() ? get_attribute(v, part) : Value::undefined(part);
      if (v.kind() == Value::Kind::kMethod) v = Value::undefined(part);
    }
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return v;
}

std::optional<int> indent_of(const Value* v) {
  if (!v || (v->is_data() && v->data().is_null())) return std::nullopt;
  if (!v->is_data() || !v->data().is_number_integer()) fail("tojson indent must be an integer");
  return static_cast<int>(v->data().get<std::int64_t>());
}
}  // namespace

Value apply_filter(const std::string& name, const Value& v, const CallArgs& a) {
  const Json& d = v.data();
  if (name == "trim") {
    // Jinja's trim(chars=None) is str.strip.
    return Json(strip(v.is_undefined() ? std::string() : to_str(v), a.get(0, "chars"), true, true));
  }
  if (name == "length" || name == "count") return Json(length(v));
  if (name == "tojson") {
    const Value* sort = a.get(1, "sort_keys");
    return Json(py_json_dumps(v.is_undefined() ? Json() : d, indent_of(a.get(0, "indent")),
                              sort && sort->truthy()));
  }
  if (name == "string") return Json(to_str(v));
  if (name == "safe") return v;
  if (name == "upper" || name == "lower") return Json(ascii_case(to_str(v), name == "upper"));
  if (name == "capitalize" || name == "title")
    return call_method(Value::method(Json(to_str(v)), name), {});
  if (name == "replace") return call_method(Value::method(Json(to_str(v)), "replace"), a);
  if (name == "default" || name == "d") {
    const Value* def = a.get(0, "default_value");
    const Value* boolean = a.get(1, "boolean");
    bool use_default = v.is_undefined() || (boolean && boolean->truthy() && !v.truthy());
    if (use_default) return def ? *def : Value(Json(""));
    return v;
  }
  if (name == "first" || name == "last") {
    if (!v.is_data() || !(d.is_array() || d.is_string())) fail(name + " expects a list or string");
    if (d.empty() || (d.is_string() && d.get_ref<const std::string&>().empty()))
      return Value::undefined();
    if (d.is_array()) return name == "first" ? d.front() : d.back();
    const std::string& s = d.get_ref<const std::string&>();
    return Json(name == "first" ? s.substr(0, 1) : s.substr(s.size() - 1));
  }
  if (name == "join") {
    if (v.is_undefined()) return Json("");
    if (!d.is_array()) fail("join expects a list");
    const Value* sep = a.get(0, "d");
    const Value* attr = a.get(1, "attribute");
    std::string out, s = sep ? to_str(*sep) : std::string();
    bool first = true;
    for (const auto& e : d) {
      if (!first) out += s;
      first = false;
      out += attr ? to_str(attribute_path(e, to_str(*attr))) : py_str(e);
    }
    return Json(out);
  }
  if (name == "list") {
    if (v.is_data() && d.is_array()) return v;
    if (v.is_data() && d.is_object()) return call_method(Value::method(d, "keys"), {});
    if (v.is_data() && d.is_string()) {
      Json out = Json::array();
      for (char c : d.get<std::string>()) out.push_back(std::string(1, c));
      return out;
    }
    fail("list expects a sequence");
  }
  if (name == "items") {
    if (!v.is_data() || !d.is_object()) fail("items expects a mapping");
    return items_of(d);
  }
  if (name == "reverse") {
    if (v.is_data() && d.is_array()) {
      Json out = d;
      std::reverse(out.begin(), out.end());
      return out;
    }
    std::string s = to_str(v);
    std::reverse(s.begin(), s.end());
    return Json(s);
  }
  if (name == "int") {
    if (v.is_data() && d.is_number()) return Json(static_cast<std::int64_t>(d.get<double>()));
    if (v.is_data() && d.is_boolean()) return Json(std::int64_t{d.get<bool>()});
    try {
      return Json(static_cast<std::int64_t>(std::stoll(to_str(v))));
    } catch (...) {
      return Json(std::int64_t{0});
    }
  }
  if (name == "float") {
    if (v.is_data() && d.is_number()) return Json(d.get<double>());
    try {
      return Json(std::stod(to_str(v)));
    } catch (...) {
      return Json(0.0);
    }
  }
  if (name == "abs") {
    if (!v.is_data() || !d.is_number()) fail("abs expects a number");
    return d.is_number_integer() ? Json(std::llabs(d.get<std::int64_t>()))
                                 : Json(std::fabs(d.get<double>()));
  }
  if (name == "selectattr" || name == "rejectattr") {
    if (!v.is_data() || !d.is_array()) fail(name + " expects a list");
    if (a.positional.empty()) fail(name + " needs an attribute name");
    std::string attr = to_str(a.positional[0]);
    Json out = Json::array();
    for (const auto& e : d) {
      Value field = attribute_path(e, attr);
      bool ok;
      if (a.positional.size() >= 2) {
        CallArgs rest;
        rest.positional.assign(a.positional.begin() + 2, a.positional.end());
        ok = apply_test(to_str(a.positional[1]), field, rest);
      } else {
        ok = field.truthy();
      }
      if (ok == (name == "selectattr")) out.push_back(e);
    }
    return out;
  }
  if (name == "map") {
    if (!v.is_data() || !d.is_array()) fail("map expects a list");
    Json out = Json::array();
    const Value* attr = nullptr;
    for (const auto& [k, x] : a.keyword)
      if (k == "attribute") attr = &x;
    for (const auto& e : d) {
      if (attr) {
        Value f = attribute_path(e, to_str(*attr));
        out.push_back(f.is_undefined() ? Json() : f.data());
      } else {
        if (a.positional.empty()) fail("map needs a filter name or attribute=");
        CallArgs rest;
        rest.positional.assign(a.positional.begin() + 1, a.positional.end());
        Value r = apply_filter(to_str(a.positional[0]), Value(e), rest);
        out.push_back(r.is_undefined() ? Json() : r.data());
      }
    }
    return out;
  }
  if (name == "unique") {
    if (!v.is_data() || !d.is_array()) fail("unique expects a list");
    Json out = Json::array();
    for (const auto& e : d)
      if (std::none_of(out.begin(), out.end(), [&](const Json& x) { return py_equal(x, e); }))
        out.push_back(e);
    return out;
  }
  if (name == "indent") {
    const Value* w = a.get(0, "width");
    const Value* first = a.get(1, "first");
    std::string pad(w && w->data().is_number_integer()
                        ? static_cast<std::size_t>(w->data().get<std::int64_t>())
                        : 4,
                    ' ');
    std::string s = to_str(v), out;
    bool line_start = first && first->truthy();
    for (char c : s) {
      if (line_start && c != '\n') out += pad;
      line_start = false;
      out += c;
      if (c == '\n') line_start = true;
    }
    return Json(out);
  }
  fail("unknown filter '" + name + "'");
}

}  // namespace flagstone::engine::jinja
