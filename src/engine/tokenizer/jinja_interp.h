// The chat-template interpreter and its builtins (filters, tests, methods, global functions).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "jinja_ast.h"
#include "jinja_value.h"

namespace flagstone::engine::jinja {

// Thrown by builtins; the interpreter adds the template position.
struct EvalError {
  std::string message;
};
// raise_exception() in a template: the template rejected its input.
struct RaisedError {
  std::string message;
};

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
  // Positional argument `i`, else the keyword `name`, else undefined.
  const Value* get(std::size_t i, const char* name) const;
};

Value apply_filter(const std::string& name, const Value& input, const CallArgs& args);
bool apply_test(const std::string& name, const Value& input, const CallArgs& args);
// Attribute lookup: dict keys, methods of str/dict/list, namespace fields, loop fields.
Value get_attribute(const Value& object, const std::string& name);
Value call(const Value& callee, const CallArgs& args);

// Renders `program` with the variables of `context` (a JSON object).
std::string render(const Program& program, const Json& context);

}  // namespace flagstone::engine::jinja
