// Tree-walking evaluation of chat templates with Jinja2 scoping (a for loop's body has its own
// scope; if does not) and Python operator semantics.
#include "jinja_interp.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "flagstone/base/error.h"

namespace flagstone::engine::jinja {
namespace {

enum class Flow { kNormal, kBreak, kContinue };

[[noreturn]] void eval_fail(const std::string& m) {
  throw EvalError{m};
}

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

Value arithmetic(const std::string& op, const Value& l, const Value& r) {
  if (l.is_undefined() || r.is_undefined())
    eval_fail("unsupported operand for '" + op + "': " + (l.is_undefined() ? "left" : "right") +
              " side is undefined" +
              (l.is_undefined() && !l.name().empty() ? " ('" + l.name() + "')" : "") +
              (r.is_undefined() && !r.name().empty() ? " ('" + r.name() + "')" : ""));
  const Json& a = l.data();
  const Json& b = r.data();
  auto type_error = [&]() -> Value {
    eval_fail("unsupported operand types for " + op + ": '" + l.type_name() + "' and '" +
              r.type_name() + "'");
  };
  bool ints =
      (a.is_number_integer() || a.is_boolean()) && (b.is_number_integer() || b.is_boolean());
  auto as_int = [](const Json& j) -> std::int64_t {
    return j.is_boolean() ? (j.get<bool>() ? 1 : 0) : j.get<std::int64_t>();
  };
  auto as_double = [&](const Json& j) -> double {
    return j.is_boolean() ? (j.get<bool>() ? 1.0 : 0.0) : j.get<double>();
  };
  bool nums = (a.is_number() || a.is_boolean()) && (b.is_number() || b.is_boolean());
  if (op == "+") {
    if (a.is_string() && b.is_string()) return Json(a.get<std::string>() + b.get<std::string>());
    if (a.is_array() && b.is_array()) {
      Json out = a;
      for (const auto& e : b) out.push_back(e);
      return out;
    }
    if (ints) return Json(as_int(a) + as_int(b));
    if (nums) return Json(as_double(a) + as_double(b));
    return type_error();
  }
  if (op == "*") {
    if ((b.is_string() || b.is_array()) && a.is_number_integer()) return arithmetic(op, r, l);
    if ((a.is_string() || a.is_array()) && b.is_number_integer()) {
      std::int64_t times = std::max<std::int64_t>(0, b.get<std::int64_t>());
      std::size_t unit = a.is_string() ? a.get_ref<const std::string&>().size() : a.size();
      if (unit > 0 && static_cast<std::size_t>(times) > (std::size_t{1} << 24) / unit)
        eval_fail("repetition result too large");
      if (a.is_string()) {
        std::string out;
        for (std::int64_t i = 0; i < times; ++i) out += a.get_ref<const std::string&>();
        return Json(out);
      }
      Json out = Json::array();
      for (std::int64_t i = 0; i < times; ++i)
        for (const auto& e : a) out.push_back(e);
      return out;
    }
    if (ints) return Json(as_int(a) * as_int(b));
    if (nums) return Json(as_double(a) * as_double(b));
    return type_error();
  }
  if (!nums) return type_error();
  if (op == "-") return ints ? Json(as_int(a) - as_int(b)) : Json(as_double(a) - as_double(b));
  if (op == "/") {
    if (as_double(b) == 0.0) eval_fail("division by zero");
    return Json(as_double(a) / as_double(b));
  }
  if (op == "//" || op == "%") {
    if (as_double(b) == 0.0) eval_fail(op == "%" ? "modulo by zero" : "division by zero");
    if (ints) {
      std::int64_t q = floor_div(as_int(a), as_int(b));
      return op == "//" ? Json(q) : Json(as_int(a) - q * as_int(b));
    }
    double q = std::floor(as_double(a) / as_double(b));
    return op == "//" ? Json(q) : Json(as_double(a) - q * as_double(b));
  }
  if (op == "**") {
    if (ints && as_int(b) >= 0) {
      std::int64_t r2 = 1;
      for (std::int64_t i = 0; i < as_int(b); ++i) r2 *= as_int(a);
      return Json(r2);
    }
    return Json(std::pow(as_double(a), as_double(b)));
  }
  return type_error();
}

bool contains(const Value& container, const Value& item) {
  if (container.is_undefined()) eval_fail("'in' on an undefined value");
  const Json& c = container.data();
  const Json& x = item.data();
  if (c.is_string()) {
    if (!x.is_string()) eval_fail("'in <string>' requires a string on the left");
    return c.get_ref<const std::string&>().find(x.get_ref<const std::string&>()) !=
           std::string::npos;
  }
  if (c.is_array()) {
    for (const auto& e : c)
      if (py_equal(e, x)) return true;
    return false;
  }
  if (c.is_object()) return x.is_string() && c.contains(x.get<std::string>());
  eval_fail("argument of type '" + container.type_name() + "' is not iterable");
}

int compare(const Value& l, const Value& r, const std::string& op) {
  const Json& a = l.data();
  const Json& b = r.data();
  if (l.is_data() && r.is_data() && (a.is_number() || a.is_boolean()) &&
      (b.is_number() || b.is_boolean())) {
    double x = a.is_boolean() ? a.get<bool>() : a.get<double>();
    double y = b.is_boolean() ? b.get<bool>() : b.get<double>();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (l.is_data() && r.is_data() && a.is_string() && b.is_string())
    return a.get_ref<const std::string&>().compare(b.get_ref<const std::string&>());
  eval_fail("'" + op + "' not supported between '" + l.type_name() + "' and '" + r.type_name() +
            "'");
}

// Python sequence index with negative indices; nullopt when out of range.
std::optional<std::size_t> py_index(std::int64_t i, std::size_t n) {
  if (i < 0) i += static_cast<std::int64_t>(n);
  if (i < 0 || static_cast<std::size_t>(i) >= n) return std::nullopt;
  return static_cast<std::size_t>(i);
}

class Interpreter {
 public:
  Interpreter(const Program& program, const Json& context) : p_(program) {
    scopes_.emplace_back();
    if (context.is_object())
      for (auto it = context.begin(); it != context.end(); ++it)
        scopes_[0][it.key()] = Value(it.value());
  }

  std::string run() {
    std::string out;
    exec(p_.body, out);
    return out;
  }

 private:
  [[noreturn]] void fail(SourcePos pos, const std::string& m) const {
    throw_error(ErrorCategory::kInvalidArgument, "chat template ", p_.where(pos), ": ", m);
  }

  Value* lookup(const std::string& name) {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto f = it->find(name);
      if (f != it->end()) return &f->second;
    }
    return nullptr;
  }

  // Templates cannot loop forever, but nested loops over range() can take very long; a budget
  // turns that into an error.
  void step(SourcePos pos) {
    if (++steps_ > 1'000'000) fail(pos, "template evaluation exceeded 1 million steps");
  }

  Value eval(const Expr& e) {
    step(e.pos);
    try {
      return eval_inner(e);
    } catch (const EvalError& err) {
      fail(e.pos, err.message);
    } catch (const RaisedError& err) {
      throw_error(ErrorCategory::kInvalidArgument, "chat template ", p_.where(e.pos),
                  " raised an exception: ", err.message);
    }
  }

  CallArgs eval_args(const Args& a) {
    CallArgs out;
    for (const auto& x : a.positional) out.positional.push_back(eval(*x));
    for (const auto& [k, x] : a.keyword) out.keyword.emplace_back(k, eval(*x));
    return out;
  }

  Value eval_inner(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::kLiteral:
        return Value(e.value);
      case Expr::Kind::kName: {
        if (Value* v = lookup(e.name)) return *v;
        static const char* kFunctions[] = {"raise_exception", "namespace", "range", "dict",
                                           "strftime_now"};
        for (const char* f : kFunctions)
          if (e.name == f) return Value::function(e.name);
        return Value::undefined(e.name);
      }
      case Expr::Kind::kList: {
        Json arr = Json::array();
        for (const auto& x : e.items) {
          Value v = eval(*x);
          arr.push_back(v.is_undefined() ? Json() : v.data());
        }
        return arr;
      }
      case Expr::Kind::kDict: {
        Json obj = Json::object();
        for (std::size_t i = 0; i + 1 < e.items.size(); i += 2) {
          Value k = eval(*e.items[i]);
          Value v = eval(*e.items[i + 1]);
          if (!k.is_data() || !k.data().is_string()) eval_fail("dict keys must be strings");
          obj[k.data().get<std::string>()] = v.is_undefined() ? Json() : v.data();
        }
        return obj;
      }
      case Expr::Kind::kAttr:
        return get_attribute(eval(*e.object), e.name);
      case Expr::Kind::kIndex: {
        Value obj = eval(*e.object);
        Value key = eval(*e.items[0]);
        return index(obj, key);
      }
      case Expr::Kind::kSlice:
        return slice(eval(*e.object), e);
      case Expr::Kind::kCall:
        return call(eval(*e.object), eval_args(e.args));
      case Expr::Kind::kFilter:
        return apply_filter(e.name, eval(*e.object), eval_args(e.args));
      case Expr::Kind::kTest: {
        bool r = apply_test(e.name, eval(*e.object), eval_args(e.args));
        return Json(e.negated ? !r : r);
      }
      case Expr::Kind::kUnary: {
        Value v = eval(*e.object);
        if (e.name == "not") return Json(!v.truthy());
        if (!v.is_data() || !v.data().is_number())
          eval_fail("bad operand type for unary " + e.name + ": '" + v.type_name() + "'");
        if (e.name == "+") return v;
        return v.data().is_number_integer() ? Json(-v.data().get<std::int64_t>())
                                            : Json(-v.data().get<double>());
      }
      case Expr::Kind::kBinary:
        return binary(e);
      case Expr::Kind::kCondition: {
        if (eval(*e.object).truthy()) return eval(*e.items[0]);
        return e.items[1] ? eval(*e.items[1]) : Value::undefined();
      }
    }
    eval_fail("unknown expression");
  }

  Value index(const Value& obj, const Value& key) {
    if (obj.is_undefined())
      eval_fail("cannot index an undefined value" +
                (obj.name().empty() ? std::string() : " ('" + obj.name() + "')"));
    const Json& o = obj.data();
    const Json& k = key.data();
    if (o.is_object() && key.is_data() && k.is_string()) {
      auto it = o.find(k.get<std::string>());
      if (it != o.end()) return *it;
      return Value::undefined(k.get<std::string>());
    }
    if ((o.is_array() || o.is_string()) && key.is_data() && k.is_number_integer()) {
      std::size_t n = o.is_array() ? o.size() : o.get_ref<const std::string&>().size();
      auto i = py_index(k.get<std::int64_t>(), n);
      if (!i) return Value::undefined();
      if (o.is_array()) return o[*i];
      return Json(std::string(1, o.get_ref<const std::string&>()[*i]));
    }
    if (key.is_data() && k.is_string()) return get_attribute(obj, k.get<std::string>());
    return Value::undefined();
  }

  Value slice(const Value& obj, const Expr& e) {
    if (!obj.is_data() || !(obj.data().is_array() || obj.data().is_string()))
      eval_fail("cannot slice a value of type '" + obj.type_name() + "'");
    auto bound = [&](int k) -> std::optional<std::int64_t> {
      if (!e.items[k]) return std::nullopt;
      Value v = eval(*e.items[k]);
      if (v.is_data() && v.data().is_null()) return std::nullopt;
      if (!v.is_data() || !v.data().is_number_integer())
        eval_fail("slice indices must be integers");
      return v.data().get<std::int64_t>();
    };
    auto start = bound(0), stop = bound(1), step_opt = bound(2);
    std::int64_t step = step_opt.value_or(1);
    if (step == 0) eval_fail("slice step cannot be zero");
    const Json& o = obj.data();
    auto n =
        static_cast<std::int64_t>(o.is_array() ? o.size() : o.get_ref<const std::string&>().size());
    auto clamp = [&](std::optional<std::int64_t> v, std::int64_t def) {
      if (!v) return def;
      std::int64_t x = *v < 0 ? *v + n : *v;
      if (step > 0) return std::clamp<std::int64_t>(x, 0, n);
      return std::clamp<std::int64_t>(x, -1, n - 1);
    };
    std::int64_t b = clamp(start, step > 0 ? 0 : n - 1);
    std::int64_t en = clamp(stop, step > 0 ? n : -1);
    Json out = o.is_array() ? Json::array() : Json("");
    std::string s;
    for (std::int64_t i = b; step > 0 ? i < en : i > en; i += step) {
      if (o.is_array())
        out.push_back(o[static_cast<std::size_t>(i)]);
      else
        s += o.get_ref<const std::string&>()[static_cast<std::size_t>(i)];
    }
    return o.is_array() ? Value(out) : Value(Json(s));
  }

  Value binary(const Expr& e) {
    const std::string& op = e.name;
    if (op == "and") {
      Value l = eval(*e.object);
      return l.truthy() ? eval(*e.items[0]) : l;
    }
    if (op == "or") {
      Value l = eval(*e.object);
      return l.truthy() ? l : eval(*e.items[0]);
    }
    Value l = eval(*e.object);
    Value r = eval(*e.items[0]);
    if (op == "==" || op == "!=") {
      bool eq = l.is_undefined() || r.is_undefined()
                    ? (l.is_undefined() && r.is_undefined())
                    : (l.is_data() && r.is_data() && py_equal(l.data(), r.data()));
      return Json(op == "==" ? eq : !eq);
    }
    if (op == "<") return Json(compare(l, r, op) < 0);
    if (op == ">") return Json(compare(l, r, op) > 0);
    if (op == "<=") return Json(compare(l, r, op) <= 0);
    if (op == ">=") return Json(compare(l, r, op) >= 0);
    if (op == "in") return Json(contains(r, l));
    if (op == "not in") return Json(!contains(r, l));
    if (op == "~") return Json(to_str(l) + to_str(r));
    return arithmetic(op, l, r);
  }

  // Items that a for loop visits.
  Json iterate(const Value& v) {
    if (v.is_undefined()) return Json::array();
    const Json& d = v.data();
    if (d.is_array()) return d;
    if (d.is_object()) {
      Json keys = Json::array();
      for (auto it = d.begin(); it != d.end(); ++it) keys.push_back(it.key());
      return keys;
    }
    if (d.is_string()) {
      Json chars = Json::array();
      const std::string& s = d.get_ref<const std::string&>();
      for (std::size_t i = 0; i < s.size();) {
        std::size_t n = 1;
        while (i + n < s.size() && (static_cast<unsigned char>(s[i + n]) & 0xC0) == 0x80) ++n;
        chars.push_back(s.substr(i, n));
        i += n;
      }
      return chars;
    }
    eval_fail("'" + v.type_name() + "' object is not iterable");
  }

  void bind(const std::vector<std::string>& targets, const Json& item, SourcePos pos) {
    if (targets.size() == 1) {
      scopes_.back()[targets[0]] = Value(item);
      return;
    }
    if (!item.is_array() || item.size() != targets.size())
      fail(pos,
           "cannot unpack " + py_repr(item) + " into " + std::to_string(targets.size()) + " names");
    for (std::size_t i = 0; i < targets.size(); ++i) scopes_.back()[targets[i]] = Value(item[i]);
  }

  Flow exec_for(const Node& n, std::string& out) {
    Value iterable = eval(*n.expr);
    Json items;
    try {
      items = iterate(iterable);
    } catch (const EvalError& err) {
      fail(n.expr->pos, err.message);
    }
    if (n.filter) {
      Json kept = Json::array();
      for (const auto& item : items) {
        scopes_.emplace_back();
        bind(n.targets, item, n.pos);
        bool keep = eval(*n.filter).truthy();
        scopes_.pop_back();
        if (keep) kept.push_back(item);
      }
      items = std::move(kept);
    }
    if (items.empty()) return exec(n.else_body, out);
    std::size_t len = items.size();
    for (std::size_t i = 0; i < len; ++i) {
      step(n.pos);
      scopes_.emplace_back();
      Json loop = {{"index", i + 1},      {"index0", i},
                   {"revindex", len - i}, {"revindex0", len - i - 1},
                   {"first", i == 0},     {"last", i + 1 == len},
                   {"length", len}};
      if (i > 0) loop["previtem"] = items[i - 1];
      if (i + 1 < len) loop["nextitem"] = items[i + 1];
      scopes_.back()["loop"] = Value(std::move(loop));
      bind(n.targets, items[i], n.pos);
      Flow f = exec(n.body, out);
      scopes_.pop_back();
      if (f == Flow::kBreak) break;
    }
    return Flow::kNormal;
  }

  void assign(const Node& n, Value v) {
    if (!n.attribute.empty()) {
      Value* target = lookup(n.targets[0]);
      if (!target || target->kind() != Value::Kind::kNamespace)
        fail(n.pos, "cannot assign attribute '" + n.attribute + "' on '" + n.targets[0] +
                        "': only namespace() objects accept attribute assignment");
      target->namespace_fields()[n.attribute] = v.is_undefined() ? Json() : v.data();
      return;
    }
    if (n.targets.size() == 1) {
      scopes_.back()[n.targets[0]] = std::move(v);
      return;
    }
    bind(n.targets, v.data(), n.pos);
  }

  Flow exec(const Body& body, std::string& out) {
    for (const auto& node : body) {
      const Node& n = *node;
      step(n.pos);
      if (out.size() > (std::size_t{1} << 28)) fail(n.pos, "template output exceeds 256 MiB");
      switch (n.kind) {
        case Node::Kind::kText:
          out += n.text;
          break;
        case Node::Kind::kOutput:
          out += to_str(eval(*n.expr));
          break;
        case Node::Kind::kIf: {
          bool done = false;
          for (const auto& [cond, b] : n.branches) {
            if (eval(*cond).truthy()) {
              Flow f = exec(b, out);
              if (f != Flow::kNormal) return f;
              done = true;
              break;
            }
          }
          if (!done) {
            Flow f = exec(n.else_body, out);
            if (f != Flow::kNormal) return f;
          }
          break;
        }
        case Node::Kind::kFor:
          exec_for(n, out);
          break;
        case Node::Kind::kSet:
          assign(n, eval(*n.expr));
          break;
        case Node::Kind::kSetBlock: {
          std::string captured;
          exec(n.body, captured);
          assign(n, Value(Json(captured)));
          break;
        }
        case Node::Kind::kBreak:
        case Node::Kind::kContinue:
          if (scopes_.size() < 2) fail(n.pos, "break/continue outside of a loop");
          return n.kind == Node::Kind::kBreak ? Flow::kBreak : Flow::kContinue;
        case Node::Kind::kGeneration: {
          Flow f = exec(n.body, out);
          if (f != Flow::kNormal) return f;
          break;
        }
      }
    }
    return Flow::kNormal;
  }

  const Program& p_;
  std::vector<std::unordered_map<std::string, Value>> scopes_;
  std::size_t steps_ = 0;
};

}  // namespace

const Value* CallArgs::get(std::size_t i, const char* name) const {
  if (i < positional.size()) return &positional[i];
  for (const auto& [k, v] : keyword)
    if (k == name) return &v;
  return nullptr;
}

std::string render(const Program& program, const Json& context) {
  Interpreter interp(program, context);
  return interp.run();
}

}  // namespace flagstone::engine::jinja
