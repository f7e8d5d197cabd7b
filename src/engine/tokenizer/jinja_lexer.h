// Lexer of the chat-template Jinja subset: template text in, tokens out, with Jinja2's
// whitespace control plus transformers' trim_blocks and lstrip_blocks already applied to text.
#pragma once

#include <string>
#include <vector>

#include "jinja_ast.h"

namespace flagstone::engine::jinja {

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

// Splits `program.source` into tokens; throws flagstone::Error (kFormat) with line:column.
std::vector<Token> lex_template(const Program& program);

}  // namespace flagstone::engine::jinja
