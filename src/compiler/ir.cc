// IR basics: type printing, the op table (mnemonics and classes) and Function helpers.
// Kept apart from the verifier so the table is the one place an op's name is defined.
#include "flagstone/compiler/ir.h"

#include <array>

#include "flagstone/base/error.h"

namespace flagstone::compiler::ir {

int64_t Type::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Type Type::with_shape(std::vector<int64_t> new_shape) const {
  Type t = *this;
  t.shape = std::move(new_shape);
  return t;
}

std::string Type::str() const {
  std::string s = pointer ? "*" : "";
  s += dtype_name(dtype);
  if (!shape.empty()) {
    s += "[";
    for (size_t i = 0; i < shape.size(); ++i) {
      if (i) s += ",";
      s += std::to_string(shape[i]);
    }
    s += "]";
  }
  return s;
}

namespace {

constexpr OpInfo kInfos[] = {
    {"program_id", OpClass::kIndex, false, false},  {"num_programs", OpClass::kIndex, false, false},
    {"arange", OpClass::kIndex, false, false},      {"const", OpClass::kConstant, false, false},
    {"splat", OpClass::kShape, false, false},       {"broadcast", OpClass::kShape, false, false},
    {"reshape", OpClass::kShape, false, false},     {"expand_dims", OpClass::kShape, false, false},
    {"trans", OpClass::kShape, false, false},       {"addptr", OpClass::kMemory, false, false},
    {"load", OpClass::kMemory, false, false},       {"store", OpClass::kMemory, false, false},
    {"atomic_add", OpClass::kMemory, false, false}, {"atomic_max", OpClass::kMemory, false, false},
    {"neg", OpClass::kUnary, false, false},         {"not", OpClass::kUnary, false, true},
    {"abs", OpClass::kUnary, false, false},         {"exp", OpClass::kUnary, true, false},
    {"exp2", OpClass::kUnary, true, false},         {"log", OpClass::kUnary, true, false},
    {"log2", OpClass::kUnary, true, false},         {"sqrt", OpClass::kUnary, true, false},
    {"rsqrt", OpClass::kUnary, true, false},        {"sin", OpClass::kUnary, true, false},
    {"cos", OpClass::kUnary, true, false},          {"tanh", OpClass::kUnary, true, false},
    {"erf", OpClass::kUnary, true, false},          {"floor", OpClass::kUnary, true, false},
    {"ceil", OpClass::kUnary, true, false},         {"add", OpClass::kBinary, false, false},
    {"sub", OpClass::kBinary, false, false},        {"mul", OpClass::kBinary, false, false},
    {"div", OpClass::kBinary, false, false},        {"rem", OpClass::kBinary, false, false},
    {"min", OpClass::kBinary, false, false},        {"max", OpClass::kBinary, false, false},
    {"pow", OpClass::kBinary, true, false},         {"and", OpClass::kBinary, false, true},
    {"or", OpClass::kBinary, false, true},          {"xor", OpClass::kBinary, false, true},
    {"shl", OpClass::kBinary, false, true},         {"shr", OpClass::kBinary, false, true},
    {"eq", OpClass::kCompare, false, false},        {"ne", OpClass::kCompare, false, false},
    {"lt", OpClass::kCompare, false, false},        {"le", OpClass::kCompare, false, false},
    {"gt", OpClass::kCompare, false, false},        {"ge", OpClass::kCompare, false, false},
    {"select", OpClass::kSelect, false, false},     {"cast", OpClass::kCast, false, false},
    {"reduce_sum", OpClass::kReduce, false, false}, {"reduce_max", OpClass::kReduce, false, false},
    {"reduce_min", OpClass::kReduce, false, false}, {"argmax", OpClass::kReduce, false, false},
    {"argmin", OpClass::kReduce, false, false},     {"dot", OpClass::kDot, false, false},
    {"for", OpClass::kControl, false, false},       {"yield", OpClass::kControl, false, false},
};
static_assert(std::size(kInfos) == static_cast<size_t>(OpKind::kYield) + 1,
              "op table out of sync with OpKind");

}  // namespace

const OpInfo& op_info(OpKind kind) {
  return kInfos[static_cast<size_t>(kind)];
}

bool op_kind_from_name(std::string_view name, OpKind* kind) {
  for (size_t i = 0; i < std::size(kInfos); ++i) {
    if (kInfos[i].name == name) {
      *kind = static_cast<OpKind>(i);
      return true;
    }
  }
  return false;
}

Op Op::clone() const {
  Op op;
  op.kind = kind;
  op.operands = operands;
  op.results = results;
  op.attrs = attrs;
  op.ivalue = ivalue;
  op.fvalue = fvalue;
  if (body) {
    op.body = std::make_unique<Block>();
    op.body->args = body->args;
    for (const Op& inner : body->ops) op.body->ops.push_back(inner.clone());
  }
  return op;
}

ValueId Function::new_value(Type type) {
  value_types.push_back(std::move(type));
  return static_cast<ValueId>(value_types.size() - 1);
}

const Type& Function::type(ValueId id) const {
  FS_CHECK(id >= 0 && static_cast<size_t>(id) < value_types.size(), kInvalidArgument, "kernel '",
           name, "': value id ", id, " does not exist");
  return value_types[static_cast<size_t>(id)];
}

Function Function::clone() const {
  Function fn;
  fn.name = name;
  fn.params = params;
  fn.value_types = value_types;
  fn.meta = meta;
  fn.body.args = body.args;
  for (const Op& op : body.ops) fn.body.ops.push_back(op.clone());
  return fn;
}

int64_t Function::num_warps() const {
  auto it = meta.find("num_warps");
  return it == meta.end() ? 4 : it->second;
}

int64_t Function::num_stages() const {
  auto it = meta.find("num_stages");
  return it == meta.end() ? 2 : it->second;
}

bool is_pure(const Op& op) {
  if (op.kind == OpKind::kStore || op.kind == OpKind::kAtomicAdd || op.kind == OpKind::kAtomicMax)
    return false;
  if (op.body) {
    for (const Op& inner : op.body->ops)
      if (!is_pure(inner)) return false;
  }
  return true;
}

}  // namespace flagstone::compiler::ir
