// Recursive-descent parser of the chat-template Jinja subset. Operator precedence and
// whitespace handling follow Jinja2 as transformers configures it (trim_blocks, lstrip_blocks).
#include <cstdlib>

#include "flagstone/base/error.h"
#include "jinja_ast.h"
#include "jinja_lexer.h"
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
    DepthGuard guard(*this);
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
    DepthGuard guard(*this);
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
    DepthGuard guard(*this);
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
    DepthGuard guard(*this);
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

  // Bounds the recursion so that hostile input ("((((...") fails cleanly instead of
  // exhausting the stack.
  struct DepthGuard {
    Parser& p;
    explicit DepthGuard(Parser& parser) : p(parser) {
      if (++p.depth_ > 200) p.fail(p.peek().pos, "expression or block nesting is too deep");
    }
    ~DepthGuard() { --p.depth_; }
  };

  const Program& p_;
  std::vector<Token> t_;
  std::size_t i_ = 0;
  int depth_ = 0;
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
  Parser parser(*program, lex_template(*program));
  program->body = parser.parse_all();
  return program;
}

}  // namespace flagstone::engine::jinja
