// Lexer of the chat-template Jinja subset (see jinja_lexer.h).
#include "jinja_lexer.h"

#include <cctype>
#include <cstdlib>

#include "flagstone/base/error.h"
#include "utf8.h"

namespace flagstone::engine::jinja {
namespace {

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

}  // namespace

std::vector<Token> lex_template(const Program& program) {
  return Lexer(program).run();
}

}  // namespace flagstone::engine::jinja
