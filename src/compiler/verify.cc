// The verifier: the one place that states what a well-formed op is. The builder calls
// verify_op() on every op it creates and parse() calls verify(), so a malformed kernel is
// rejected here with a message naming the op and the fault, never later in a target compiler.
#include <cstdint>
#include <string>
#include <vector>

#include "flagstone/base/error.h"
#include "flagstone/compiler/ir.h"

namespace flagstone::compiler::ir {
namespace {

class OpChecker {
 public:
  OpChecker(const Function& fn, const Op& op) : fn_(fn), op_(op) {}

  [[noreturn]] void fail(const std::string& why) const {
    throw_error(ErrorCategory::kInvalidArgument, "kernel '", fn_.name, "': `", print_op(fn_, op_),
                "`: ", why);
  }
  void expect(bool cond, const std::string& why) const {
    if (!cond) fail(why);
  }
  const Type& operand(size_t i) const { return fn_.type(op_.operands[i]); }
  const Type& result(size_t i) const { return fn_.type(op_.results[i]); }

  void counts(size_t min_operands, size_t max_operands, size_t results) const {
    expect(op_.operands.size() >= min_operands && op_.operands.size() <= max_operands,
           "takes " + range_text(min_operands, max_operands) + " operands, got " +
               std::to_string(op_.operands.size()));
    expect(op_.results.size() == results, "must have " + std::to_string(results) +
                                              " results, has " +
                                              std::to_string(op_.results.size()));
  }
  void attrs(size_t min_count, size_t max_count) const {
    expect(op_.attrs.size() >= min_count && op_.attrs.size() <= max_count,
           "takes " + range_text(min_count, max_count) + " attributes, got " +
               std::to_string(op_.attrs.size()));
  }
  void not_pointer(const Type& t, const std::string& what) const {
    expect(!t.pointer, what + " must not be a pointer, got " + t.str());
  }
  void same_shape(const Type& a, const Type& b, const std::string& what) const {
    expect(a.shape == b.shape, what + ": shape mismatch (" + a.str() + " vs " + b.str() + ")");
  }
  void check_result(const Type& expected) const {
    expect(result(0) == expected,
           "result type is " + result(0).str() + " but the op produces " + expected.str());
  }

  void run();

 private:
  static std::string range_text(size_t lo, size_t hi) {
    return lo == hi ? std::to_string(lo) : std::to_string(lo) + " to " + std::to_string(hi);
  }
  void check_memory();
  void check_reduce();
  void check_dot();
  void check_for();

  const Function& fn_;
  const Op& op_;
};

bool is_int(DType d) {
  return dtype_info(d).is_integer;
}
bool is_float(DType d) {
  return dtype_info(d).is_float;
}

void OpChecker::run() {
  for (ValueId id : op_.operands)
    expect(id >= 0 && static_cast<size_t>(id) < fn_.value_types.size(),
           "operand %" + std::to_string(id) + " is not a value of this kernel");
  for (ValueId id : op_.results)
    expect(id >= 0 && static_cast<size_t>(id) < fn_.value_types.size(),
           "result %" + std::to_string(id) + " is not a value of this kernel");
  for (ValueId id : op_.operands)
    expect(!is_quantized(fn_.type(id).dtype), "quantized dtype " + fn_.type(id).str() +
                                                  " cannot be computed on; load its blocks as u8");
  for (ValueId id : op_.results) {
    const Type& t = fn_.type(id);
    expect(!is_quantized(t.dtype), "quantized result dtype " + t.str());
    expect(t.rank() <= 8, "tiles have at most 8 dims, got " + t.str());
    int64_t numel = 1;
    for (int64_t d : t.shape) {
      expect(d > 0 && d <= kMaxTileElements && numel * d <= kMaxTileElements,
             "tile " + t.str() + " must have positive dims and at most " +
                 std::to_string(kMaxTileElements) + " elements");
      numel *= d;
    }
  }
  expect(op_.kind == OpKind::kFor || op_.body == nullptr, "only a for loop has a body");
  const OpInfo& info = op_info(op_.kind);
  switch (info.op_class) {
    case OpClass::kIndex: {
      counts(0, 0, 1);
      if (op_.kind == OpKind::kArange) {
        attrs(2, 2);
        expect(op_.attrs[0] >= INT32_MIN && op_.attrs[0] <= INT32_MAX &&
                   op_.attrs[1] >= INT32_MIN && op_.attrs[1] <= INT32_MAX,
               "arange bounds must fit in i32");
        expect(op_.attrs[1] > op_.attrs[0], "arange end must exceed start");
        check_result(tile_type(DType::kI32, {op_.attrs[1] - op_.attrs[0]}));
      } else {
        attrs(1, 1);
        expect(op_.attrs[0] >= 0 && op_.attrs[0] < 3, "axis must be 0, 1 or 2");
        check_result(scalar_type(DType::kI32));
      }
      return;
    }
    case OpClass::kConstant:
      counts(0, 0, 1);
      attrs(0, 0);
      not_pointer(result(0), "a constant");
      return;
    case OpClass::kShape: {
      counts(1, 1, 1);
      const Type& src = operand(0);
      const Type& dst = result(0);
      expect(src.dtype == dst.dtype && src.pointer == dst.pointer,
             "changes the element type from " + src.str() + " to " + dst.str());
      switch (op_.kind) {
        case OpKind::kSplat:
          attrs(0, 0);
          expect(!src.is_tile(), "splat takes a scalar, got " + src.str());
          expect(dst.is_tile(), "splat must produce a tile");
          break;
        case OpKind::kBroadcast: {
          attrs(0, 0);
          expect(src.is_tile() && src.rank() == dst.rank(),
                 "broadcast needs a tile of the result's rank, got " + src.str());
          for (int i = 0; i < src.rank(); ++i)
            expect(src.shape[i] == dst.shape[i] || src.shape[i] == 1,
                   "cannot broadcast " + src.str() + " to " + dst.str() + " (dim " +
                       std::to_string(i) + ")");
          break;
        }
        case OpKind::kReshape:
          attrs(0, 0);
          expect(
              src.is_tile() && dst.is_tile() && src.numel() == dst.numel(),
              "reshape must keep the number of elements (" + src.str() + " to " + dst.str() + ")");
          break;
        case OpKind::kExpandDims: {
          attrs(1, 1);
          int64_t axis = op_.attrs[0];
          expect(axis >= 0 && axis <= src.rank(),
                 "axis " + std::to_string(axis) + " out of range for " + src.str());
          std::vector<int64_t> shape = src.shape;
          shape.insert(shape.begin() + axis, 1);
          check_result(src.with_shape(shape));
          break;
        }
        default: {  // kTrans
          attrs(0, 0);
          expect(src.rank() == 2, "trans needs a 2-d tile, got " + src.str());
          check_result(src.with_shape({src.shape[1], src.shape[0]}));
          break;
        }
      }
      return;
    }
    case OpClass::kMemory:
      check_memory();
      return;
    case OpClass::kUnary: {
      counts(1, 1, 1);
      attrs(0, 0);
      const Type& a = operand(0);
      not_pointer(a, "the operand");
      if (info.float_only) expect(is_float(a.dtype), "needs a float operand, got " + a.str());
      if (info.int_only)
        expect(!is_float(a.dtype), "needs an integer or bool operand, got " + a.str());
      if (op_.kind == OpKind::kNeg || op_.kind == OpKind::kAbs)
        expect(a.dtype != DType::kBool, "is not defined on bool");
      check_result(a);
      return;
    }
    case OpClass::kBinary:
    case OpClass::kCompare: {
      counts(2, 2, 1);
      attrs(0, 0);
      const Type& a = operand(0);
      const Type& b = operand(1);
      not_pointer(a, "the left operand");
      not_pointer(b, "the right operand");
      expect(a == b, "operand types differ (" + a.str() + " vs " + b.str() + ")");
      if (info.float_only) expect(is_float(a.dtype), "needs float operands, got " + a.str());
      if (info.int_only)
        expect(!is_float(a.dtype), "needs integer or bool operands, got " + a.str());
      if (op_.kind == OpKind::kShl || op_.kind == OpKind::kShr)
        expect(is_int(a.dtype), "needs integer operands, got " + a.str());
      if (op_.kind == OpKind::kAdd || op_.kind == OpKind::kSub || op_.kind == OpKind::kMul ||
          op_.kind == OpKind::kDiv || op_.kind == OpKind::kRem)
        expect(a.dtype != DType::kBool, "arithmetic is not defined on bool; cast first");
      check_result(info.op_class == OpClass::kCompare ? Type{DType::kBool, false, a.shape} : a);
      return;
    }
    case OpClass::kSelect: {
      counts(3, 3, 1);
      attrs(0, 0);
      const Type& c = operand(0);
      expect(c.dtype == DType::kBool && !c.pointer, "condition must be bool, got " + c.str());
      not_pointer(operand(1), "the true value");
      expect(operand(1) == operand(2),
             "value types differ (" + operand(1).str() + " vs " + operand(2).str() + ")");
      same_shape(c, operand(1), "condition and values");
      check_result(operand(1));
      return;
    }
    case OpClass::kCast:
      counts(1, 1, 1);
      attrs(0, 0);
      not_pointer(operand(0), "the operand");
      not_pointer(result(0), "the result");
      same_shape(operand(0), result(0), "operand and result");
      return;
    case OpClass::kReduce:
      check_reduce();
      return;
    case OpClass::kDot:
      check_dot();
      return;
    case OpClass::kControl:
      if (op_.kind == OpKind::kFor) check_for();
      return;  // yield is checked against its loop in check_for
  }
}

void OpChecker::check_memory() {
  if (op_.kind == OpKind::kAddPtr) {
    counts(2, 2, 1);
    attrs(0, 0);
    expect(operand(0).pointer, "the base must be a pointer, got " + operand(0).str());
    expect(!operand(1).pointer && is_int(operand(1).dtype),
           "offsets must be integers, got " + operand(1).str());
    same_shape(operand(0), operand(1), "pointer and offsets");
    check_result(operand(0));
    return;
  }
  bool is_load = op_.kind == OpKind::kLoad;
  if (is_load)
    counts(1, 3, 1);
  else
    counts(2, 3, 0);
  attrs(0, 1);
  const Type& ptr = operand(0);
  std::string verb(op_info(op_.kind).name);
  expect(ptr.pointer, verb + " through a non-pointer " + ptr.str());
  Type value = ptr;
  value.pointer = false;
  size_t mask_index = is_load ? 1 : 2;
  if (!is_load) {
    expect(operand(1) == value, verb + " of a " + operand(1).str() + " value through a " +
                                    ptr.str() + " pointer (expected " + value.str() + ")");
    if (op_.kind != OpKind::kStore)
      expect(value.dtype == DType::kF32 || value.dtype == DType::kI32,
             verb + " supports f32 and i32, got " + value.str());
  }
  if (op_.operands.size() > mask_index) {
    const Type& mask = operand(mask_index);
    expect(mask.dtype == DType::kBool && !mask.pointer, "mask must be bool, got " + mask.str());
    same_shape(mask, ptr, "mask and pointer");
  }
  if (is_load && op_.operands.size() > 2)
    expect(operand(2) == value, "fill value must be " + value.str() + ", got " + operand(2).str());
  if (is_load) check_result(value);
  if (!op_.attrs.empty()) expect(op_.attrs[0] >= 1, "vector width must be positive");
}

void OpChecker::check_reduce() {
  counts(1, 1, 1);
  attrs(2, 2);
  const Type& src = operand(0);
  not_pointer(src, "the operand");
  expect(src.is_tile(), "reduces a tile, got the scalar " + src.str());
  int64_t axis = op_.attrs[0];
  expect(axis >= 0 && axis < src.rank(),
         "axis " + std::to_string(axis) + " out of range for " + src.str());
  expect(op_.attrs[1] == 0 || op_.attrs[1] == 1, "keepdims must be 0 or 1");
  std::vector<int64_t> shape = src.shape;
  if (op_.attrs[1])
    shape[static_cast<size_t>(axis)] = 1;
  else
    shape.erase(shape.begin() + axis);
  bool arg = op_.kind == OpKind::kArgMax || op_.kind == OpKind::kArgMin;
  if (op_.kind == OpKind::kReduceSum)
    expect(src.dtype != DType::kBool, "reduce_sum is not defined on bool; cast first");
  check_result(Type{arg ? DType::kI32 : src.dtype, false, shape});
}

void OpChecker::check_dot() {
  counts(2, 3, 1);
  attrs(0, 0);
  const Type& a = operand(0);
  const Type& b = operand(1);
  auto ok_dtype = [](DType d) { return d == DType::kF32 || d == DType::kF16 || d == DType::kBF16; };
  expect(!a.pointer && !b.pointer && a.rank() == 2 && b.rank() == 2,
         "needs two 2-d tiles, got " + a.str() + " and " + b.str());
  expect(a.dtype == b.dtype && ok_dtype(a.dtype),
         "inputs must both be f32, f16 or bf16, got " + a.str() + " and " + b.str());
  expect(a.shape[1] == b.shape[0], "inner dimensions differ: " + a.str() + " @ " + b.str());
  Type out{DType::kF32, false, {a.shape[0], b.shape[1]}};
  if (op_.operands.size() == 3)
    expect(operand(2) == out, "accumulator must be " + out.str() + ", got " + operand(2).str());
  check_result(out);
}

void OpChecker::check_for() {
  expect(op_.operands.size() >= 3, "for takes lo, hi, step and the initial carried values");
  expect(op_.body != nullptr, "for loop has no body");
  attrs(0, 0);
  size_t carried = op_.operands.size() - 3;
  const Type& lo = operand(0);
  expect(!lo.is_tile() && !lo.pointer && is_int(lo.dtype),
         "loop bounds must be integer scalars, got " + lo.str());
  expect(operand(1) == lo && operand(2) == lo, "loop bounds and step must share one type, got " +
                                                   lo.str() + ", " + operand(1).str() + ", " +
                                                   operand(2).str());
  expect(op_.results.size() == carried, "must have one result per carried value");
  expect(op_.body->args.size() == carried + 1,
         "body must take the induction variable and one argument per carried value");
  expect(fn_.type(op_.body->args[0]) == lo, "induction variable must be " + lo.str());
  for (size_t i = 0; i < carried; ++i) {
    const Type& init = operand(3 + i);
    expect(fn_.type(op_.body->args[i + 1]) == init && result(i) == init,
           "carried value " + std::to_string(i) + " changes type from " + init.str());
  }
  expect(!op_.body->ops.empty() && op_.body->ops.back().kind == OpKind::kYield,
         "body must end with yield");
  const Op& yield = op_.body->ops.back();
  expect(yield.results.empty() && yield.attrs.empty() && yield.operands.size() == carried,
         "yield must pass exactly " + std::to_string(carried) + " values");
  for (size_t i = 0; i < carried; ++i)
    expect(fn_.type(yield.operands[i]) == operand(3 + i),
           "yielded value " + std::to_string(i) + " has type " + fn_.type(yield.operands[i]).str() +
               " but the loop carries " + operand(3 + i).str());
}

// Walks blocks keeping the set of values in scope, so uses before definitions (or of values of
// a loop body from outside it) are reported.
class ScopeChecker {
 public:
  explicit ScopeChecker(const Function& fn) : fn_(fn), defined_(fn.value_types.size(), 0) {}

  void run() {
    for (const Param& p : fn_.params) define(p.value, nullptr);
    check_block(fn_.body, false);
  }

 private:
  void define(ValueId id, const Op* op) {
    FS_CHECK(id >= 0 && static_cast<size_t>(id) < defined_.size(), kInvalidArgument, "kernel '",
             fn_.name, "': value id ", id, " does not exist");
    if (defined_[static_cast<size_t>(id)]) {
      if (op)
        throw_error(ErrorCategory::kInvalidArgument, "kernel '", fn_.name, "': `",
                    print_op(fn_, *op), "`: value %", id, " is defined twice");
      throw_error(ErrorCategory::kInvalidArgument, "kernel '", fn_.name, "': value %", id,
                  " is defined twice");
    }
    defined_[static_cast<size_t>(id)] = 1;
    stack_.push_back(id);
  }

  void check_block(const Block& block, bool in_loop) {
    for (const Op& op : block.ops) {
      for (ValueId id : op.operands) {
        if (id < 0 || static_cast<size_t>(id) >= defined_.size() ||
            !defined_[static_cast<size_t>(id)])
          throw_error(ErrorCategory::kInvalidArgument, "kernel '", fn_.name, "': `",
                      print_op(fn_, op), "`: uses %", id, ", which is not defined before it");
      }
      if (op.kind == OpKind::kYield) {
        if (!in_loop || &op != &block.ops.back())
          throw_error(ErrorCategory::kInvalidArgument, "kernel '", fn_.name, "': `",
                      print_op(fn_, op), "`: yield must be the last op of a for body");
        continue;
      }
      verify_op(fn_, op);
      if (op.kind == OpKind::kFor) {
        size_t mark = stack_.size();
        for (ValueId arg : op.body->args) define(arg, &op);
        check_block(*op.body, true);
        while (stack_.size() > mark) {
          defined_[static_cast<size_t>(stack_.back())] = 0;
          stack_.pop_back();
        }
      }
      for (ValueId id : op.results) define(id, &op);
    }
  }

  const Function& fn_;
  std::vector<char> defined_;
  std::vector<ValueId> stack_;
};

}  // namespace

void verify_op(const Function& fn, const Op& op) {
  OpChecker(fn, op).run();
}

void verify(const Function& fn) {
  FS_CHECK(!fn.name.empty(), kInvalidArgument, "kernel has no name");
  for (size_t i = 0; i < fn.params.size(); ++i) {
    const Param& p = fn.params[i];
    const Type& t = fn.type(p.value);
    FS_CHECK(!t.is_tile(), kInvalidArgument, "kernel '", fn.name, "': parameter '", p.name,
             "' must be a scalar or pointer, got ", t.str());
    FS_CHECK((p.role == ParamRole::kPointer) == t.pointer, kInvalidArgument, "kernel '", fn.name,
             "': parameter '", p.name, "' role does not match its type ", t.str());
    if (p.role != ParamRole::kPointer)
      FS_CHECK(t.dtype == DType::kI32 || t.dtype == DType::kI64 || t.dtype == DType::kF32 ||
                   t.dtype == DType::kF64,
               kInvalidArgument, "kernel '", fn.name, "': scalar parameter '", p.name,
               "' must be i32, i64, f32 or f64, got ", t.str());
    if (p.role == ParamRole::kSize || p.role == ParamRole::kStride) {
      FS_CHECK(p.tensor_param >= 0 && static_cast<size_t>(p.tensor_param) < i &&
                   fn.params[static_cast<size_t>(p.tensor_param)].role == ParamRole::kPointer,
               kInvalidArgument, "kernel '", fn.name, "': parameter '", p.name,
               "' must refer to an earlier pointer parameter");
      FS_CHECK(is_int(t.dtype), kInvalidArgument, "kernel '", fn.name, "': parameter '", p.name,
               "' (a size or stride) must be an integer, got ", t.str());
    }
  }
  ScopeChecker(fn).run();
}

}  // namespace flagstone::compiler::ir
