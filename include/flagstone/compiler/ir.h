// The kernel IR: SSA values typed as scalars, pointers or static-shape tiles, and the ops of the
// tile language. Kernels are built with KernelBuilder (builder.h), checked by verify(), and
// printed/parsed in a textual form that round-trips exactly.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "flagstone/base/dtype.h"

namespace flagstone::compiler::ir {

using ValueId = int32_t;
inline constexpr ValueId kNoValue = -1;
// Tiles live in registers or on the stack of one program: 16 Mi elements is far beyond any
// useful block and keeps every size computation far from overflow.
inline constexpr int64_t kMaxTileElements = int64_t{1} << 24;

// A value's type: element dtype, whether it is a pointer to that dtype, and a static shape
// (empty for scalars). A pointer tile is a tile of addresses, as in Triton.
struct Type {
  DType dtype = DType::kF32;
  bool pointer = false;
  std::vector<int64_t> shape;

  bool is_tile() const { return !shape.empty(); }
  int rank() const { return static_cast<int>(shape.size()); }
  int64_t numel() const;
  // The same type with another shape (pointer-ness and dtype kept).
  Type with_shape(std::vector<int64_t> new_shape) const;
  Type scalar() const { return with_shape({}); }
  bool operator==(const Type& other) const = default;
  // "f32", "*f16", "i32[128]", "*f32[16,32]".
  std::string str() const;
};

inline Type scalar_type(DType dtype) {
  return Type{dtype, false, {}};
}
inline Type tile_type(DType dtype, std::vector<int64_t> shape) {
  return Type{dtype, false, std::move(shape)};
}

enum class OpKind : uint8_t {
  // Indexing.
  kProgramId,    // [axis] -> i32
  kNumPrograms,  // [axis] -> i32
  kArange,       // [start, end] -> i32[end-start]
  kConstant,     // value (ivalue or fvalue) -> scalar or splat tile of the result type
  // Shape.
  kSplat,       // scalar -> tile
  kBroadcast,   // tile -> tile, size-1 dims stretched to the result shape
  kReshape,     // tile -> tile of the same numel (row-major order kept)
  kExpandDims,  // [axis] tile -> tile with a size-1 dim inserted
  kTrans,       // 2-d tile -> its transpose
  // Memory.
  kAddPtr,     // pointer (scalar or tile) + integer offsets (same shape) -> pointer
  kLoad,       // ptr [, mask [, other]] -> value
  kStore,      // ptr, value [, mask]
  kAtomicAdd,  // ptr, value [, mask]
  kAtomicMax,  // ptr, value [, mask]
  // Elementwise unary.
  kNeg,
  kNot,
  kAbs,
  kExp,
  kExp2,
  kLog,
  kLog2,
  kSqrt,
  kRsqrt,
  kSin,
  kCos,
  kTanh,
  kErf,
  kFloor,
  kCeil,
  // Elementwise binary.
  kAdd,
  kSub,
  kMul,
  kDiv,
  kRem,
  kMin,
  kMax,
  kPow,
  kAnd,
  kOr,
  kXor,
  kShl,
  kShr,
  // Comparisons -> bool.
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,
  kSelect,  // cond, a, b
  kCast,    // value -> result dtype
  // Reductions along one axis: [axis, keepdims]. argmax/argmin give i32 indices (first wins).
  kReduceSum,
  kReduceMax,
  kReduceMin,
  kArgMax,
  kArgMin,
  kDot,    // a[M,K], b[K,N] [, acc f32[M,N]] -> f32[M,N]
  kFor,    // lo, hi, step, inits... ; body args (iv, carried...) ; results = final carried
  kYield,  // terminator of a for body: the next carried values
};

enum class OpClass : uint8_t {
  kIndex,
  kConstant,
  kShape,
  kMemory,
  kUnary,
  kBinary,
  kCompare,
  kSelect,
  kCast,
  kReduce,
  kDot,
  kControl
};

struct OpInfo {
  std::string_view name;  // textual mnemonic: "add", "reduce_sum", "atomic_add"...
  OpClass op_class;
  bool float_only;  // exp, sqrt, pow...
  bool int_only;    // rem? no: and/or/xor/shl/shr/not on integers and bool
};
const OpInfo& op_info(OpKind kind);
// Finds the kind of a mnemonic; returns false when there is none.
bool op_kind_from_name(std::string_view name, OpKind* kind);

struct Block;

struct Op {
  OpKind kind = OpKind::kConstant;
  std::vector<ValueId> operands;
  std::vector<ValueId> results;
  // Integer attributes: axis, [start,end], [axis,keepdims]; load/store: [vec] once chosen.
  std::vector<int64_t> attrs;
  // Constants: integers and bool use ivalue, floats fvalue.
  int64_t ivalue = 0;
  double fvalue = 0;
  std::unique_ptr<Block> body;  // kFor only

  Op() = default;
  Op(Op&&) noexcept = default;
  Op& operator=(Op&&) noexcept = default;
  Op clone() const;  // deep copy (same value ids)
};

struct Block {
  std::vector<ValueId> args;  // kFor body: induction variable, then carried values
  std::vector<Op> ops;
};

// How a kernel parameter is bound at launch: user pointers and scalars come from the caller in
// order; sizes and strides are filled from the tensor bound to `tensor_param`.
enum class ParamRole : uint8_t { kPointer, kScalar, kSize, kStride };

struct Param {
  std::string name;
  ValueId value = kNoValue;
  ParamRole role = ParamRole::kScalar;
  int tensor_param = -1;  // kSize/kStride: index of the pointer param
  int dim = 0;            // kSize/kStride: which dim
};

struct Function {
  std::string name;
  std::vector<Param> params;
  std::vector<Type> value_types;  // by ValueId
  Block body;
  std::map<std::string, int64_t> meta;  // compile-time meta-parameters, incl. num_warps

  ValueId new_value(Type type);
  const Type& type(ValueId id) const;
  Function clone() const;
  int64_t num_warps() const;
  int64_t num_stages() const;
};

// Checks every op of `fn`: operand counts, types, shapes, dtypes, pointer-ness, that each value
// is defined before use, and that for bodies end in a matching yield. Throws
// Error(kInvalidArgument) whose message names the kernel, the op (as printed) and the fault.
void verify(const Function& fn);
// Checks one op of `fn` whose operands already exist (the builder's eager check).
void verify_op(const Function& fn, const Op& op);

// The textual form. print() numbers values in definition order, so print(parse(print(f))) ==
// print(f). parse() throws Error(kFormat) with line and column, then verifies.
std::string print(const Function& fn);
std::string print_op(const Function& fn, const Op& op);
Function parse(std::string_view text);

// Helpers shared by passes and targets.
bool is_pure(const Op& op);  // no memory writes (a for loop is pure if its body is)
// Calls fn(op) for every op, nested bodies included, in program order.
template <typename F>
void walk(const Block& block, F&& fn) {
  for (const Op& op : block.ops) {
    fn(op);
    if (op.body) walk(*op.body, fn);
  }
}
template <typename F>
void walk_mut(Block& block, F&& fn) {
  for (Op& op : block.ops) {
    fn(op);
    if (op.body) walk_mut(*op.body, fn);
  }
}

}  // namespace flagstone::compiler::ir
