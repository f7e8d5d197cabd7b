// Lexer and recursive-descent parser of the chat-template Jinja subset. Operator precedence and
// whitespace handling follow Jinja2 as transformers configures it (trim_blocks, lstrip_blocks).
#include <cstdlib>

#include "flagstone/base/error.h"
#include "jinja_ast.h"
#include "utf8.h"

namespace flagstone::engine::jinja {

std::string Program::where(SourcePos pos) const {
  std::size_t line = 1, col = 1;
  for (std::size_t i = 0; i < pos.offset && i < source.size(); ++i) {
    if (source[i] == '\n') {
      ++line;
      col = 1;
    } else if ((static_cast<unsigned char>(source[i]) & 0xC0) != 0x80) {
      ++col;
    }
  }
  return name + ":" + std::to_string(line) + ":" + std::to_string(col);
}

namespace {

struct Token {
  enum class Kind {
    kText,
    kVarBegin,
    kVarEnd,
    kBlockBegin,
    kBlockEnd,
    kName,
    kString,
    kInt,
    kFloat,
    kOp,
    kEof
  };
  Kind kind;
  std::string text;
  std::size_t pos;
};

class Lexer {
 public:
  Lexer(const Program& program) : p_(program), s_(program.source) {}

  std::vector<Token> run() {
    std::size_t pos = 0;
    bool strip_next = false;    // the previous tag ended with '-'
    bool trim_newline = false;  // the previous block tag ended plainly (trim_blocks)
    while (pos < s_.size()) {
      std::size_t open = find_open(pos);
      std::string text = s_.substr(pos, open - pos);
      if (trim_newline && !text.empty() && text[0] == '\n') text.erase(0, 1);
      if (strip_next)
        text.erase(0, text.find_first_not_of(" \t\n\r\f\v") == std::string::npos
                          ? text.size()
                          : text.find_first_not_of(" \t\n\r\f\v"));
      strip_next = trim_newline = false;
      if (open >= s_.size()) {
        emit_text(std::move(text), pos);
        break;
      }
      char type = s_[open + 1];
      char modifier = open + 2 < s_.size() ? s_[open + 2] : '\0';
      if (modifier == '-') {
        auto last = text.find_last_not_of(" \t\n\r\f\v");
        text.erase(last == std::string::npos ? 0 : last + 1);
      } else if (modifier != '+' && (type == '%' || type == '#')) {
        // lstrip_blocks: drop spaces and tabs between the start of the line and the tag.
        auto nl = text.find_last_of('\n');
        std::size_t line_start = nl == std::string::npos ? 0 : nl + 1;
        bool at_line_start = nl != std::string::npos || pos == 0 || text_ends_line(pos);
        if (at_line_start && text.find_first_not_of(" \t", line_start) == std::string::npos)
          text.erase(line_start);
      }
      emit_text(std::move(text), pos);
      std::size_t inner = open + 2 + ((modifier == '-' || modifier == '+') ? 1 : 0);
      if (type == '#') {
        std::size_t close = s_.find("#}", inner);
        if (close == std::string::npos) fail(open, "unclosed comment");
        strip_next = close > inner && s_[close - 1] == '-';
        trim_newline = !strip_next;
        pos = close + 2;
        continue;
      }
      bool block = type == '%';
      tokens_.push_back({block ? Token::Kind::kBlockBegin : Token::Kind::kVarBegin, "", open});
      std::size_t end = lex_inside(inner, block, &strip_next);
      trim_newline = block && !strip_next && !(end >= 3 && s_[end - 3] == '+');
      tokens_.push_back({block ? Token::Kind::kBlockEnd : Token::Kind::kVarEnd, "", end - 2});
      pos = end;
      if (block && is_raw_tag()) pos = lex_raw(pos, &strip_next, &trim_newline);
    }
    tokens_.push_back({Token::Kind::kEof, "", s_.size()});
    return std::move(tokens_);
  }

 private:
  [[noreturn]] void fail(std::size_t at, const std::string& what) const {
    throw_error(ErrorCategory::kFormat, "chat template ", p_.where({at}), ": ", what);
  }

  // The previous tag ended right before `pos`, so a text chunk there starts mid-line.
  bool text_ends_line(std::size_t) const { return false; }

  std::size_t find_open(std::size_t pos) const {
    for (std::size_t i = s_.find('{', pos); i != std::string::npos; i = s_.find('{', i + 1)) {
      if (i + 1 < s_.size() && (s_[i + 1] == '{' || s_[i + 1] == '%' || s_[i + 1] == '#')) return i;
    }
    return s_.size();
  }

  void emit_text(std::string text, std::size_t pos) {
    if (!text.empty()) tokens_.push_back({Token::Kind::kText, std::move(text), pos});
  }

  bool is_raw_tag() const {
    std::size_t n = tokens_.size();
    return n >= 3 && tokens_[n - 2].kind == Token::Kind::kName && tokens_[n - 2].text == "raw" &&
           tokens_[n - 3].kind == Token::Kind::kBlockBegin;
  }

  // After {% raw %}: everything up to {% endraw %} is text.
  std::size_t lex_raw(std::size_t pos, bool* strip_next, bool* trim_newline) {
    tokens_.resize(tokens_.size() - 3);
    for (std::size_t i = s_.find("{%", pos); i != std::string::npos; i = s_.find("{%", i + 2)) {
      std::size_t j = i + 2;
      if (j < s_.size() && (s_[j] == '-' || s_[j] == '+')) ++j;
      while (j < s_.size() && s_[j] == ' ') ++j;
      if (s_.compare(j, 6, "endraw") != 0) continue;
      std::size_t close = s_.find("%}", j);
      if (close == std::string::npos) break;
      std::string text = s_.substr(pos, i - pos);
      if (*trim_newline && !text.empty() && text[0] == '\n') text.erase(0, 1);
      if (s_[i + 2] == '-') {
        auto last = text.find_last_not_of(" \t\n\r\f\v");
        text.erase(last == std::string::npos ? 0 : last + 1);
      }
      emit_text(std::move(text), pos);
      *strip_next = s_[close - 1] == '-';
      *trim_newline = !*strip_next;
      return close + 2;
    }
    fail(pos, "{% raw %} without {% endraw %}");
  }

  // Tokenizes the inside of a tag; returns the offset just past its closing delimiter.
  std::size_t lex_inside(std::size_t i, bool block, bool* strip_after) {
    const char close = block ? '%' : '}';
    while (true) {
      while (i < s_.size() && std::isspace(static_cast<unsigned char>(s_[i]))) ++i;
      if (i >= s_.size()) fail(i, block ? "unclosed {% tag" : "unclosed {{ expression");
      char c = s_[i];
      // Closing delimiter, optionally preceded by '-' or '+'.
      if ((c == '-' || c == '+') && i + 2 < s_.size() + 0 && s_[i + 1] == close &&
          s_[i + 2] == '}') {
        *strip_after = c == '-';
        return i + 3;
      }
      if (c == close && i + 1 < s_.size() && s_[i + 1] == '}') {
        *strip_after = false;
        return i + 2;
      }
      std::size_t start = i;
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        while (i < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[i])) || s_[i] == '_'))
          ++i;
        tokens_.push_back({Token::Kind::kName, s_.substr(start, i - start), start});
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        bool is_float = false;
        while (i < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[i])) || s_[i] == '_'))
          ++i;
        if (i + 1 < s_.size() && s_[i] == '.' &&
            std::isdigit(static_cast<unsigned char>(s_[i + 1]))) {
          is_float = true;
          ++i;
          while (i < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i]))) ++i;
        }
        if (i < s_.size() && (s_[i] == 'e' || s_[i] == 'E')) {
          std::size_t j = i + 1;
          if (j < s_.size() && (s_[j] == '+' || s_[j] == '-')) ++j;
          if (j < s_.size() && std::isdigit(static_cast<unsigned char>(s_[j]))) {
            is_float = true;
            i = j;
            while (i < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i]))) ++i;
          }
        }
        std::string num;
        for (std::size_t k = start; k < i; ++k)
          if (s_[k] != '_') num += s_[k];
        tokens_.push_back({is_float ? Token::Kind::kFloat : Token::Kind::kInt, num, start});
      } else if (c == '\'' || c == '"') {
        tokens_.push_back({Token::Kind::kString, lex_string(i), start});
      } else {
        static const char* kOps[] = {"==", "!=", "<=", ">=", "//", "**", "+", "-", "*",
                                     "/",  "%",  "~",  "<",  ">",  "(",  ")", "[", "]",
                                     "{",  "}",  ".",  ",",  ":",  "|",  "="};
        bool found = false;
        for (const char* op : kOps) {
          std::size_t n = std::char_traits<char>::length(op);
          if (s_.compare(i, n, op) == 0) {
            tokens_.push_back({Token::Kind::kOp, op, start});
            i += n;
            found = true;
            break;
          }
        }
        if (!found) fail(i, std::string("unexpected character '") + c + "'");
      }
    }
  }

  // A quoted literal with Python's escapes; `i` is moved past the closing quote.
  std::string lex_string(std::size_t& i) {
    char quote = s_[i];
    std::size_t start = i++;
    std::string out;
    while (true) {
      if (i >= s_.size()) fail(start, "unterminated string literal");
      char c = s_[i++];
      if (c == quote) return out;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i >= s_.size()) fail(start, "unterminated string literal");
      char e = s_[i++];
      switch (e) {
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'v':
          out += '\v';
          break;
        case 'a':
          out += '\a';
          break;
        case '0':
          out += '\0';
          break;
        case '\\':
          out += '\\';
          break;
        case '\'':
          out += '\'';
          break;
        case '"':
          out += '"';
          break;
        case '\n':
          break;
        case 'x':
        case 'u':
        case 'U': {
          std::size_t digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          if (i + digits > s_.size()) fail(i, "truncated \\" + std::string(1, e) + " escape");
          std::string hex = s_.substr(i, digits);
          char* endp = nullptr;
          unsigned long cp = std::strtoul(hex.c_str(), &endp, 16);
          if (endp != hex.c_str() + digits || cp > 0x10FFFF)
            fail(i, "bad \\" + std::string(1, e) + " escape");
          tok::append_utf8(out, static_cast<char32_t>(cp));
          i += digits;
          break;
        }
        default:
          // Python keeps unknown escapes verbatim.
          out += '\\';
          out += e;
      }
    }
  }

  const Program& p_;
  const std::string& s_;
  std::vector<Token> tokens_;
};

class Parser {
 public:
  Parser(const Program& program, std::vector<Token> tokens) : p_(program), t_(std::move(tokens)) {}

  Body parse_all() {
    std::string end;
    Body body = parse_body({}, &end);
    return body;
  }

 private:
  using K = Token::Kind;

  [[noreturn]] void fail(std::size_t at, const std::string& what) const {
    throw_error(ErrorCategory::kFormat, "chat template ", p_.where({at}), ": ", what);
  }
  const Token& peek(std::size_t k = 0) const { return t_[std::min(i_ + k, t_.size() - 1)]; }
  const Token& next() { return t_[std::min(i_++, t_.size() - 1)]; }
  bool is_op(const char* op, std::size_t k = 0) const {
    return peek(k).kind == K::kOp && peek(k).text == op;
  }
  bool is_name(const char* name, std::size_t k = 0) const {
    return peek(k).kind == K::kName && peek(k).text == name;
  }
  void expect_op(const char* op) {
    if (!is_op(op)) fail(peek().pos, std::string("expected '") + op + "'" + found());
    ++i_;
  }
  std::string found() const {
    const Token& t = peek();
    switch (t.kind) {
      case K::kEof:
        return " but the template ended";
      case K::kBlockEnd:
        return " but found the end of the tag";
      case K::kVarEnd:
        return " but found '}}'";
      default:
        return " but found '" + t.text + "'";
    }
  }
  std::string expect_name() {
    if (peek().kind != K::kName) fail(peek().pos, "expected a name" + found());
    return next().text;
  }
  void expect_block_end() {
    if (peek().kind != K::kBlockEnd) fail(peek().pos, "expected '%}'" + found());
    ++i_;
  }

  // Parses nodes until one of `ends` is the next block tag; its name goes to *end.
  Body parse_body(const std::vector<std::string>& ends, std::string* end) {
    Body body;
    while (true) {
      const Token& t = peek();
      if (t.kind == K::kEof) {
        if (!ends.empty()) fail(t.pos, "missing {% " + ends.back() + " %}");
        return body;
      }
      if (t.kind == K::kText) {
        auto n = std::make_unique<Node>();
        n->kind = Node::Kind::kText;
        n->pos = {t.pos};
        n->text = t.text;
        body.push_back(std::move(n));
        ++i_;
        continue;
      }
      if (t.kind == K::kVarBegin) {
        ++i_;
        auto n = std::make_unique<Node>();
        n->kind = Node::Kind::kOutput;
        n->pos = {t.pos};
        n->expr = parse_expression();
        if (peek().kind != K::kVarEnd) fail(peek().pos, "expected '}}'" + found());
        ++i_;
        body.push_back(std::move(n));
        continue;
      }
      if (t.kind != K::kBlockBegin) fail(t.pos, "unexpected token '" + t.text + "'");
      const Token& kw = peek(1);
      if (kw.kind != K::kName) fail(kw.pos, "expected a tag name after '{%'");
      for (const auto& e : ends) {
        if (kw.text == e) {
          i_ += 2;
          *end = e;
          return body;
        }
      }
      i_ += 2;
      body.push_back(parse_statement(kw));
    }
  }

  std::unique_ptr<Node> parse_statement(const Token& kw) {
    auto n = std::make_unique<Node>();
    n->pos = {kw.pos};
    const std::string& k = kw.text;
    std::string end;
    if (k == "if") {
      n->kind = Node::Kind::kIf;
      auto cond = parse_expression();
      expect_block_end();
      while (true) {
        Body b = parse_body({"elif", "else", "endif"}, &end);
        n->branches.emplace_back(std::move(cond), std::move(b));
        if (end == "elif") {
          cond = parse_expression();
          expect_block_end();
          continue;
        }
        expect_block_end();
        if (end == "else") {
          n->else_body = parse_body({"endif"}, &end);
          expect_block_end();
        }
        break;
      }
    } else if (k == "for") {
      n->kind = Node::Kind::kFor;
      n->targets.push_back(expect_name());
      while (is_op(",")) {
        ++i_;
        n->targets.push_back(expect_name());
      }
      if (!is_name("in")) fail(peek().pos, "expected 'in' in for loop" + found());
      ++i_;
      n->expr = parse_or();  // no conditional expression here: 'if' starts the loop filter
      if (is_name("if")) {
        ++i_;
        n->filter = parse_expression();
      }
      if (is_name("recursive")) fail(peek().pos, "recursive loops are not supported");
      expect_block_end();
      n->body = parse_body({"else", "endfor"}, &end);
      expect_block_end();
      if (end == "else") {
        n->else_body = parse_body({"endfor"}, &end);
        expect_block_end();
      }
    } else if (k == "set") {
      std::string name = expect_name();
      if (is_op(".")) {
        ++i_;
        n->attribute = expect_name();
      }
      n->targets.push_back(name);
      while (is_op(",")) {
        ++i_;
        n->targets.push_back(expect_name());
      }
      if (is_op("=")) {
        ++i_;
        n->kind = Node::Kind::kSet;
        n->expr = parse_expression();
        expect_block_end();
      } else {
        n->kind = Node::Kind::kSetBlock;
        expect_block_end();
        n->body = parse_body({"endset"}, &end);
        expect_block_end();
      }
    } else if (k == "break" || k == "continue") {
      n->kind = k == "break" ? Node::Kind::kBreak : Node::Kind::kContinue;
      expect_block_end();
    } else if (k == "generation") {
      n->kind = Node::Kind::kGeneration;
      expect_block_end();
      n->body = parse_body({"endgeneration"}, &end);
      expect_block_end();
    } else {
      fail(kw.pos, "unsupported or unexpected tag '" + k + "'");
    }
    return n;
  }

  ExprPtr make(Expr::Kind kind, std::size_t pos) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->pos = {pos};
    return e;
  }

  ExprPtr parse_expression() {
    std::size_t pos = peek().pos;
    ExprPtr e = parse_or();
    while (is_name("if")) {
      ++i_;
      auto c = make(Expr::Kind::kCondition, pos);
      c->object = parse_or();
      c->items.push_back(std::move(e));
      if (is_name("else")) {
        ++i_;
        c->items.push_back(parse_expression());
      } else {
        c->items.push_back(nullptr);
      }
      e = std::move(c);
    }
    return e;
  }

  ExprPtr binary(const std::string& op, ExprPtr l, ExprPtr r, std::size_t pos) {
    auto e = make(Expr::Kind::kBinary, pos);
    e->name = op;
    e->object = std::move(l);
    e->items.push_back(std::move(r));
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr e = parse_and();
    while (is_name("or")) {
      std::size_t pos = next().pos;
      e = binary("or", std::move(e), parse_and(), pos);
    }
    return e;
  }
  ExprPtr parse_and() {
    ExprPtr e = parse_not();
    while (is_name("and")) {
      std::size_t pos = next().pos;
      e = binary("and", std::move(e), parse_not(), pos);
    }
    return e;
  }
  ExprPtr parse_not() {
    if (is_name("not")) {
      auto e = make(Expr::Kind::kUnary, next().pos);
      e->name = "not";
      e->object = parse_not();
      return e;
    }
    return parse_compare();
  }
  ExprPtr parse_compare() {
    ExprPtr e = parse_math1();
    while (true) {
      std::size_t pos = peek().pos;
      std::string op;
      if (peek().kind == K::kOp &&
          (peek().text == "==" || peek().text == "!=" || peek().text == "<" || peek().text == ">" ||
           peek().text == "<=" || peek().text == ">=")) {
        op = next().text;
      } else if (is_name("in")) {
        ++i_;
        op = "in";
      } else if (is_name("not") && is_name("in", 1)) {
        i_ += 2;
        op = "not in";
      } else {
        return e;
      }
      e = binary(op, std::move(e), parse_math1(), pos);
    }
  }
  ExprPtr parse_math1() {
    ExprPtr e = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Token& t = next();
      e = binary(t.text, std::move(e), parse_concat(), t.pos);
    }
    return e;
  }
  ExprPtr parse_concat() {
    ExprPtr e = parse_math2();
    while (is_op("~")) {
      std::size_t pos = next().pos;
      e = binary("~", std::move(e), parse_math2(), pos);
    }
    return e;
  }
  ExprPtr parse_math2() {
    ExprPtr e = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token& t = next();
      e = binary(t.text, std::move(e), parse_pow(), t.pos);
    }
    return e;
  }
  ExprPtr parse_pow() {
    ExprPtr e = parse_unary(true);
    while (is_op("**")) {
      std::size_t pos = next().pos;
      e = binary("**", std::move(e), parse_unary(true), pos);
    }
    return e;
  }
  ExprPtr parse_unary(bool with_filter) {
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      const Token& t = next();
      e = make(Expr::Kind::kUnary, t.pos);
      e->name = t.text;
      e->object = parse_unary(false);
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    if (with_filter) e = parse_filters(std::move(e));
    return e;
  }

  ExprPtr parse_primary() {
    const Token& t = peek();
    switch (t.kind) {
      case K::kName: {
        ++i_;
        auto e = make(Expr::Kind::kLiteral, t.pos);
        if (t.text == "true" || t.text == "True") {
          e->value = true;
        } else if (t.text == "false" || t.text == "False") {
          e->value = false;
        } else if (t.text == "none" || t.text == "None") {
          e->value = nullptr;
        } else {
          e->kind = Expr::Kind::kName;
          e->name = t.text;
        }
        return e;
      }
      case K::kString: {
        auto e = make(Expr::Kind::kLiteral, t.pos);
        std::string s;
        while (peek().kind == K::kString) s += next().text;  // adjacent literals concatenate
        e->value = s;
        return e;
      }
      case K::kInt: {
        ++i_;
        auto e = make(Expr::Kind::kLiteral, t.pos);
        e->value = std::strtoll(t.text.c_str(), nullptr, 10);
        return e;
      }
      case K::kFloat: {
        ++i_;
        auto e = make(Expr::Kind::kLiteral, t.pos);
        e->value = std::strtod(t.text.c_str(), nullptr);
        return e;
      }
      case K::kOp:
        if (t.text == "(") {
          ++i_;
          if (is_op(")")) {  // empty tuple
            ++i_;
            return make(Expr::Kind::kList, t.pos);
          }
          ExprPtr first = parse_expression();
          if (is_op(",")) {  // a tuple, evaluated as a list
            auto e = make(Expr::Kind::kList, t.pos);
            e->items.push_back(std::move(first));
            while (is_op(",")) {
              ++i_;
              if (is_op(")")) break;
              e->items.push_back(parse_expression());
            }
            expect_op(")");
            return e;
          }
          expect_op(")");
          return first;
        }
        if (t.text == "[") {
          ++i_;
          auto e = make(Expr::Kind::kList, t.pos);
          while (!is_op("]")) {
            e->items.push_back(parse_expression());
            if (!is_op(",")) break;
            ++i_;
          }
          expect_op("]");
          return e;
        }
        if (t.text == "{") {
          ++i_;
          auto e = make(Expr::Kind::kDict, t.pos);
          while (!is_op("}")) {
            e->items.push_back(parse_expression());
            expect_op(":");
            e->items.push_back(parse_expression());
            if (!is_op(",")) break;
            ++i_;
          }
          expect_op("}");
          return e;
        }
        break;
      default:
        break;
    }
    fail(t.pos, "expected an expression" + found());
  }

  void parse_args(Args& args) {
    expect_op("(");
    while (!is_op(")")) {
      if (peek().kind == K::kName && is_op("=", 1)) {
        std::string key = next().text;
        ++i_;
        args.keyword.emplace_back(key, parse_expression());
      } else {
        if (!args.keyword.empty()) fail(peek().pos, "positional argument after keyword argument");
        args.positional.push_back(parse_expression());
      }
      if (!is_op(",")) break;
      ++i_;
    }
    expect_op(")");
  }

  ExprPtr parse_postfix(ExprPtr e) {
    while (true) {
      if (is_op(".")) {
        std::size_t pos = next().pos;
        auto a = make(Expr::Kind::kAttr, pos);
        if (peek().kind == K::kInt) {  // foo.0 is foo[0]
          a->kind = Expr::Kind::kIndex;
          auto idx = make(Expr::Kind::kLiteral, peek().pos);
          idx->value = std::strtoll(next().text.c_str(), nullptr, 10);
          a->items.push_back(std::move(idx));
        } else {
          a->name = expect_name();
        }
        a->object = std::move(e);
        e = std::move(a);
      } else if (is_op("[")) {
        std::size_t pos = next().pos;
        ExprPtr parts[3];
        int part = 0;
        bool slice = false;
        while (!is_op("]")) {
          if (is_op(":")) {
            ++i_;
            slice = true;
            if (++part > 2) fail(peek().pos, "too many ':' in slice");
            continue;
          }
          if (parts[part]) fail(peek().pos, "expected ']' or ':'" + found());
          parts[part] = parse_expression();
        }
        ++i_;
        auto x = make(slice ? Expr::Kind::kSlice : Expr::Kind::kIndex, pos);
        if (!slice && !parts[0]) fail(pos, "empty subscript");
        x->object = std::move(e);
        for (int k = 0; k < (slice ? 3 : 1); ++k) x->items.push_back(std::move(parts[k]));
        e = std::move(x);
      } else if (is_op("(")) {
        auto c = make(Expr::Kind::kCall, peek().pos);
        c->object = std::move(e);
        parse_args(c->args);
        e = std::move(c);
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_filters(ExprPtr e) {
    while (true) {
      if (is_op("|")) {
        std::size_t pos = next().pos;
        auto f = make(Expr::Kind::kFilter, pos);
        f->name = expect_name();
        if (is_op("(")) parse_args(f->args);
        f->object = std::move(e);
        e = parse_postfix(std::move(f));
      } else if (is_name("is")) {
        std::size_t pos = next().pos;
        auto x = make(Expr::Kind::kTest, pos);
        if (is_name("not")) {
          ++i_;
          x->negated = true;
        }
        x->name = expect_name();
        if (is_op("(")) {
          parse_args(x->args);
        } else if (peek().kind == K::kString || peek().kind == K::kInt ||
                   peek().kind == K::kFloat ||
                   (peek().kind == K::kName && !is_name("and") && !is_name("or") &&
                    !is_name("if") && !is_name("else") && !is_name("is") && !is_name("in") &&
                    !is_name("not"))) {
          x->args.positional.push_back(parse_primary());  // "is divisibleby 3"
        }
        x->object = std::move(e);
        e = std::move(x);
      } else {
        return e;
      }
    }
  }

  const Program& p_;
  std::vector<Token> t_;
  std::size_t i_ = 0;
};

}  // namespace

std::unique_ptr<Program> parse_template(std::string_view source, std::string_view name) {
  auto program = std::make_unique<Program>();
  program->name = std::string(name);
  // Jinja normalizes newlines and drops a single trailing newline.
  std::string& s = program->source;
  s.reserve(source.size());
  for (std::size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      s += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      s += source[i];
    }
  }
  if (!s.empty() && s.back() == '\n') s.pop_back();
  Lexer lexer(*program);
  Parser parser(*program, lexer.run());
  program->body = parser.parse_all();
  return program;
}

}  // namespace flagstone::engine::jinja
