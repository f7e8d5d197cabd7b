// The textual form of the IR: a printer that numbers values in definition order and a parser
// that reads it back, so print(parse(print(f))) == print(f) for every kernel.
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <unordered_map>

#include "flagstone/base/error.h"
#include "flagstone/compiler/ir.h"

namespace flagstone::compiler::ir {
namespace {

bool is_float_dtype(DType d) {
  return dtype_info(d).is_float;
}

// Shortest decimal text that reads back as the same double.
std::string format_double(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

class Printer {
 public:
  Printer(const Function& fn, bool renumber) : fn_(fn), renumber_(renumber) {
    for (const Param& p : fn.params) names_[p.value] = p.name;
  }

  std::string name(ValueId id) {
    auto it = names_.find(id);
    if (it != names_.end()) return "%" + it->second;
    std::string n = std::to_string(renumber_ ? next_++ : id);
    if (renumber_) names_[id] = n;
    std::string out = "%";
    out += n;
    return out;
  }

  void function(std::string& out) {
    out += "kernel @" + fn_.name + "(";
    for (size_t i = 0; i < fn_.params.size(); ++i) {
      const Param& p = fn_.params[i];
      if (i) out += ", ";
      out += "%" + p.name + ": " + fn_.type(p.value).str();
      if (p.role == ParamRole::kSize || p.role == ParamRole::kStride)
        out += std::string(" = ") + (p.role == ParamRole::kSize ? "size" : "stride") + "(%" +
               fn_.params[static_cast<size_t>(p.tensor_param)].name + ", " + std::to_string(p.dim) +
               ")";
    }
    out += ")";
    if (!fn_.meta.empty()) {
      out += " [";
      bool first = true;
      for (const auto& [key, value] : fn_.meta) {
        if (!first) out += ", ";
        first = false;
        out += key + "=" + std::to_string(value);
      }
      out += "]";
    }
    out += " {\n";
    block(fn_.body, 1, out);
    out += "}\n";
  }

  void block(const Block& b, int depth, std::string& out) {
    for (const Op& op : b.ops) {
      out.append(static_cast<size_t>(depth) * 2, ' ');
      op_line(op, out);
      if (op.body) {
        out += " {\n";
        block(*op.body, depth + 1, out);
        out.append(static_cast<size_t>(depth) * 2, ' ');
        out += "}";
      }
      out += "\n";
    }
  }

  void op_line(const Op& op, std::string& out) {
    for (size_t i = 0; i < op.results.size(); ++i) {
      out += i ? ", " : "";
      out += name(op.results[i]);
    }
    if (!op.results.empty()) out += " = ";
    out += op_info(op.kind).name;
    if (op.kind == OpKind::kConstant && !op.results.empty()) {
      DType d = fn_.type(op.results[0]).dtype;
      out += " " + (is_float_dtype(d) ? format_double(op.fvalue) : std::to_string(op.ivalue));
    }
    for (size_t i = 0; i < op.operands.size(); ++i) {
      out += i ? ", " : " ";
      out += name(op.operands[i]);
    }
    if (!op.attrs.empty()) {
      out += " [";
      for (size_t i = 0; i < op.attrs.size(); ++i) {
        out += i ? ", " : "";
        out += std::to_string(op.attrs[i]);
      }
      out += "]";
    }
    if (!op.results.empty()) {
      out += " : ";
      for (size_t i = 0; i < op.results.size(); ++i) {
        out += i ? ", " : "";
        out += fn_.type(op.results[i]).str();
      }
    }
    if (op.body) {
      out += " (";
      for (size_t i = 0; i < op.body->args.size(); ++i) {
        out += i ? ", " : "";
        out += name(op.body->args[i]);
      }
      out += ")";
    }
  }

 private:
  const Function& fn_;
  bool renumber_;
  std::unordered_map<ValueId, std::string> names_;
  int next_ = 0;
};

// ---- Parser ----

struct Token {
  enum Kind { kEnd, kValue, kSymbol, kIdent, kNumber, kPunct } kind = kEnd;
  std::string text;
  int line = 1;
  int col = 1;
};

class Lexer {
 public:
  explicit Lexer(std::string_view text) : text_(text) {}

  Token next() {
    skip_space();
    Token t;
    t.line = line_;
    t.col = col_;
    if (pos_ >= text_.size()) return t;
    char c = text_[pos_];
    auto ident_char = [](char ch) {
      return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '.';
    };
    if (c == '%' || c == '@') {
      advance();
      t.kind = c == '%' ? Token::kValue : Token::kSymbol;
      while (pos_ < text_.size() && ident_char(text_[pos_])) t.text += advance();
      if (t.text.empty()) fail(t, std::string("expected a name after '") + c + "'");
      return t;
    }
    if (std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '+') {
      t.kind = Token::kNumber;
      t.text += advance();
      while (pos_ < text_.size()) {
        char ch = text_[pos_];
        char prev = t.text.back();
        if (ident_char(ch) || ((ch == '-' || ch == '+') && (prev == 'e' || prev == 'E')))
          t.text += advance();
        else
          break;
      }
      return t;
    }
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      t.kind = Token::kIdent;
      while (pos_ < text_.size() && ident_char(text_[pos_])) t.text += advance();
      return t;
    }
    t.kind = Token::kPunct;
    t.text = std::string(1, advance());
    return t;
  }

  [[noreturn]] static void fail(const Token& t, const std::string& why) {
    throw_error(ErrorCategory::kFormat, "kernel text line ", t.line, ", column ", t.col, ": ", why);
  }

 private:
  char advance() {
    char c = text_[pos_++];
    if (c == '\n') {
      ++line_;
      col_ = 1;
    } else {
      ++col_;
    }
    return c;
  }
  void skip_space() {
    while (pos_ < text_.size()) {
      char c = text_[pos_];
      if (c == '/' && pos_ + 1 < text_.size() && text_[pos_ + 1] == '/') {
        while (pos_ < text_.size() && text_[pos_] != '\n') advance();
      } else if (std::isspace(static_cast<unsigned char>(c))) {
        advance();
      } else {
        break;
      }
    }
  }

  std::string_view text_;
  size_t pos_ = 0;
  int line_ = 1;
  int col_ = 1;
};

class Parser {
 public:
  explicit Parser(std::string_view text) : lex_(text) { tok_ = lex_.next(); }

  Function run() {
    expect_ident("kernel");
    if (tok_.kind != Token::kSymbol) fail("expected @name of the kernel");
    fn_.name = take().text;
    expect_punct("(");
    if (!is_punct(")")) {
      do param();
      while (accept_punct(","));
    }
    expect_punct(")");
    if (accept_punct("[")) {
      do {
        if (tok_.kind != Token::kIdent) fail("expected a meta-parameter name");
        std::string key = take().text;
        expect_punct("=");
        fn_.meta[key] = integer();
      } while (accept_punct(","));
      expect_punct("]");
    }
    expect_punct("{");
    block(fn_.body);
    if (tok_.kind != Token::kEnd) fail("unexpected text after the kernel");
    return std::move(fn_);
  }

 private:
  [[noreturn]] void fail(const std::string& why) const { Lexer::fail(tok_, why); }
  Token take() {
    Token t = tok_;
    tok_ = lex_.next();
    return t;
  }
  bool is_punct(const char* p) const { return tok_.kind == Token::kPunct && tok_.text == p; }
  bool accept_punct(const char* p) {
    if (!is_punct(p)) return false;
    take();
    return true;
  }
  void expect_punct(const char* p) {
    if (!accept_punct(p)) fail(std::string("expected '") + p + "', found '" + tok_.text + "'");
  }
  void expect_ident(const char* word) {
    if (tok_.kind != Token::kIdent || tok_.text != word)
      fail(std::string("expected '") + word + "', found '" + tok_.text + "'");
    take();
  }
  int64_t integer() {
    if (tok_.kind != Token::kNumber) fail("expected an integer, found '" + tok_.text + "'");
    Token t = take();
    errno = 0;
    char* end = nullptr;
    long long v = std::strtoll(t.text.c_str(), &end, 10);
    if (errno || *end) Lexer::fail(t, "'" + t.text + "' is not an integer");
    return v;
  }
  Type type() {
    Type t;
    if (accept_punct("*")) t.pointer = true;
    if (tok_.kind != Token::kIdent) fail("expected a dtype, found '" + tok_.text + "'");
    Token d = take();
    try {
      t.dtype = parse_dtype(d.text);
    } catch (const Error& e) {
      Lexer::fail(d, e.message());
    }
    if (accept_punct("[")) {
      int64_t numel = 1;
      do {
        int64_t n = integer();
        if (n <= 0) fail("tile dims must be positive");
        if (n > kMaxTileElements || numel * n > kMaxTileElements)
          fail("tile of more than " + std::to_string(kMaxTileElements) + " elements");
        numel *= n;
        t.shape.push_back(n);
        if (t.shape.size() > 8) fail("tiles have at most 8 dims");
      } while (accept_punct(","));
      expect_punct("]");
    }
    return t;
  }

  ValueId define(const Type& t) {
    if (tok_.kind != Token::kValue) fail("expected a %value, found '" + tok_.text + "'");
    Token name = take();
    if (names_.count(name.text)) Lexer::fail(name, "value %" + name.text + " is defined twice");
    ValueId id = fn_.new_value(t);
    names_[name.text] = id;
    return id;
  }
  ValueId use() {
    if (tok_.kind != Token::kValue) fail("expected a %value, found '" + tok_.text + "'");
    Token name = take();
    auto it = names_.find(name.text);
    if (it == names_.end()) Lexer::fail(name, "value %" + name.text + " is not defined");
    return it->second;
  }

  void param() {
    if (tok_.kind != Token::kValue) fail("expected a %parameter");
    Token name = take();
    for (char c : name.text)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_')
        Lexer::fail(name, "parameter names are letters, digits and '_'");
    if (std::isdigit(static_cast<unsigned char>(name.text[0])))
      Lexer::fail(name, "parameter names must not start with a digit");
    if (names_.count(name.text)) Lexer::fail(name, "parameter %" + name.text + " is defined twice");
    expect_punct(":");
    Type t = type();
    Param p;
    p.name = name.text;
    p.value = fn_.new_value(t);
    names_[p.name] = p.value;
    p.role = t.pointer ? ParamRole::kPointer : ParamRole::kScalar;
    if (accept_punct("=")) {
      if (tok_.kind != Token::kIdent || (tok_.text != "size" && tok_.text != "stride"))
        fail("expected size(...) or stride(...)");
      p.role = take().text == "size" ? ParamRole::kSize : ParamRole::kStride;
      expect_punct("(");
      ValueId tensor = use();
      p.tensor_param = -1;
      for (size_t i = 0; i < fn_.params.size(); ++i)
        if (fn_.params[i].value == tensor) p.tensor_param = static_cast<int>(i);
      if (p.tensor_param < 0) fail("size/stride must name a pointer parameter");
      expect_punct(",");
      p.dim = static_cast<int>(integer());
      expect_punct(")");
    }
    fn_.params.push_back(p);
  }

  void block(Block& b) {
    if (++depth_ > 64) fail("loops nested more than 64 deep");
    while (!accept_punct("}")) {
      if (tok_.kind == Token::kEnd) fail("missing '}'");
      b.ops.push_back(op());
    }
    --depth_;
  }

  Op op() {
    // Results are named first but typed after the ':'; collect their names.
    std::vector<Token> result_names;
    if (tok_.kind == Token::kValue) {
      do {
        if (tok_.kind != Token::kValue) fail("expected a %result");
        result_names.push_back(take());
      } while (accept_punct(","));
      expect_punct("=");
    }
    if (tok_.kind != Token::kIdent) fail("expected an op name, found '" + tok_.text + "'");
    Token op_name = take();
    Op op;
    if (!op_kind_from_name(op_name.text, &op.kind))
      Lexer::fail(op_name, "unknown op '" + op_name.text + "'");
    Token const_tok;
    if (op.kind == OpKind::kConstant) const_tok = take();
    while (tok_.kind == Token::kValue) {
      op.operands.push_back(use());
      if (!accept_punct(",")) break;
    }
    if (accept_punct("[")) {
      do op.attrs.push_back(integer());
      while (accept_punct(","));
      expect_punct("]");
    }
    std::vector<Type> types;
    if (accept_punct(":")) {
      do types.push_back(type());
      while (accept_punct(","));
    }
    if (types.size() != result_names.size())
      Lexer::fail(op_name, "op '" + op_name.text + "' names " +
                               std::to_string(result_names.size()) + " results but gives " +
                               std::to_string(types.size()) + " types");
    for (size_t i = 0; i < types.size(); ++i) {
      const Token& n = result_names[i];
      if (names_.count(n.text)) Lexer::fail(n, "value %" + n.text + " is defined twice");
      ValueId id = fn_.new_value(types[i]);
      names_[n.text] = id;
      op.results.push_back(id);
    }
    if (op.kind == OpKind::kConstant) {
      if (types.size() != 1) Lexer::fail(op_name, "const has one result");
      char* end = nullptr;
      const std::string& text = const_tok.text;
      errno = 0;
      if (is_float_dtype(types[0].dtype))
        op.fvalue = std::strtod(text.c_str(), &end);
      else
        op.ivalue = std::strtoll(text.c_str(), &end, 10);
      if (text.empty() || *end || errno == ERANGE ||
          (const_tok.kind != Token::kNumber && const_tok.kind != Token::kIdent))
        Lexer::fail(const_tok, "'" + text + "' is not a valid " +
                                   std::string(dtype_name(types[0].dtype)) + " constant");
    }
    if (op.kind == OpKind::kFor) {
      op.body = std::make_unique<Block>();
      expect_punct("(");
      if (op.operands.empty()) fail("for needs bounds");
      Type iv_type = fn_.type(op.operands[0]);
      size_t index = 0;
      if (!is_punct(")")) {
        do {
          Type t = index == 0
                       ? iv_type
                       : (3 + index - 1 < op.operands.size() ? fn_.type(op.operands[3 + index - 1])
                                                             : iv_type);
          op.body->args.push_back(define(t));
          ++index;
        } while (accept_punct(","));
      }
      expect_punct(")");
      expect_punct("{");
      block(*op.body);
    }
    return op;
  }

  Lexer lex_;
  Token tok_;
  Function fn_;
  std::unordered_map<std::string, ValueId> names_;
  int depth_ = 0;
};

}  // namespace

std::string print(const Function& fn) {
  std::string out;
  Printer(fn, true).function(out);
  return out;
}

std::string print_op(const Function& fn, const Op& op) {
  std::string out;
  Printer(fn, false).op_line(op, out);
  return out;
}

Function parse(std::string_view text) {
  Function fn = Parser(text).run();
  verify(fn);
  return fn;
}

}  // namespace flagstone::compiler::ir
