// Syntax tree of the Jinja subset that chat templates use, produced by parse_template().
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "jinja_value.h"

namespace flagstone::engine::jinja {

// A byte offset in the template, reported as line:column in errors.
struct SourcePos {
  std::size_t offset = 0;
};

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Args {
  std::vector<ExprPtr> positional;
  std::vector<std::pair<std::string, ExprPtr>> keyword;
};

struct Expr {
  enum class Kind {
    kLiteral,    // value
    kName,       // name
    kList,       // items
    kDict,       // items as key, value pairs
    kAttr,       // object.name
    kIndex,      // object[items[0]]
    kSlice,      // object[a:b:c] with items[0..2] possibly null
    kCall,       // object(args)
    kFilter,     // object | name(args)
    kTest,       // object is [not] name(args)
    kUnary,      // op object
    kBinary,     // object op items[0]
    kCondition,  // items[0] if object else items[1] (items[1] may be null)
  };
  Kind kind;
  SourcePos pos;
  Json value;            // kLiteral
  std::string name;      // kName, kAttr, kFilter, kTest, and the operator of kUnary/kBinary
  bool negated = false;  // kTest: "is not"
  ExprPtr object;
  std::vector<ExprPtr> items;
  Args args;
};

struct Node;
using Body = std::vector<std::unique_ptr<Node>>;

struct Node {
  enum class Kind { kText, kOutput, kIf, kFor, kSet, kSetBlock, kBreak, kContinue, kGeneration };
  Kind kind;
  SourcePos pos;
  std::string text;                                // kText
  ExprPtr expr;                                    // kOutput, kSet value, kFor iterable
  std::vector<std::pair<ExprPtr, Body>> branches;  // kIf: condition, body
  Body else_body;                                  // kIf, kFor
  std::vector<std::string> targets;                // kFor loop variables, kSet names
  std::string attribute;                           // kSet of ns.attribute
  ExprPtr filter;                                  // kFor ... if filter
  Body body;                                       // kFor, kSetBlock, kGeneration
};

struct Program {
  std::string source;
  std::string name;
  Body body;
  // "name:line:col" of an offset, for error messages.
  std::string where(SourcePos pos) const;
};

// Parses with the settings transformers uses: trim_blocks, lstrip_blocks, and Jinja's default
// of dropping one trailing newline. Throws flagstone::Error (kFormat) naming line and column.
std::unique_ptr<Program> parse_template(std::string_view source, std::string_view name);

}  // namespace flagstone::engine::jinja
