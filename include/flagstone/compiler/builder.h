// The kernel language embedded in C++: KernelBuilder creates IR ops, Value carries operator
// overloads, so a kernel body reads like Triton. See docs/compiler.md for the full guide.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include "flagstone/compiler/ir.h"

namespace flagstone::compiler {

// Compile-time meta-parameters of one kernel instance: block sizes and the like, plus
// num_warps (threads per program = num_warps * warp size on GPUs) and num_stages.
class Config {
 public:
  Config() = default;
  Config(std::initializer_list<std::pair<const std::string, int64_t>> values) : values_(values) {}

  // Throws kInvalidArgument naming the missing meta-parameter.
  int64_t get(const std::string& name) const;
  int64_t get_or(const std::string& name, int64_t fallback) const;
  void set(const std::string& name, int64_t value) { values_[name] = value; }
  bool has(const std::string& name) const { return values_.count(name) != 0; }
  int64_t num_warps() const { return get_or("num_warps", 4); }
  int64_t num_stages() const { return get_or("num_stages", 2); }
  const std::map<std::string, int64_t>& values() const { return values_; }
  std::string str() const;  // "BLOCK=256,num_warps=4"
  bool operator==(const Config& other) const = default;

 private:
  std::map<std::string, int64_t> values_;
};

class KernelBuilder;

// An SSA value of the kernel being built: a scalar, a pointer or a tile.
class Value {
 public:
  Value() = default;
  Value(KernelBuilder* builder, ir::ValueId id) : builder_(builder), id_(id) {}

  bool valid() const { return builder_ != nullptr; }
  ir::ValueId id() const { return id_; }
  KernelBuilder* builder() const { return builder_; }
  const ir::Type& type() const;
  DType dtype() const { return type().dtype; }
  const std::vector<int64_t>& shape() const { return type().shape; }
  bool is_pointer() const { return type().pointer; }
  bool is_tile() const { return type().is_tile(); }

  Value to(DType dtype) const;  // cast
  Value reshape(std::vector<int64_t> shape) const;
  Value broadcast_to(std::vector<int64_t> shape) const;
  Value expand_dims(int axis) const;
  Value trans() const;
  // Triton's x[:, None] and x[None, :] for 1-d tiles.
  Value col() const { return expand_dims(1); }
  Value row() const { return expand_dims(0); }

 private:
  KernelBuilder* builder_ = nullptr;
  ir::ValueId id_ = ir::kNoValue;
};

// A tensor argument: a pointer plus i32 size and stride scalars filled at launch from the
// tensor, so kernels handle any strides (sizes and strides count elements).
struct TensorArg {
  Value ptr;
  std::vector<Value> sizes;
  std::vector<Value> strides;
  Value size(int dim) const { return sizes.at(static_cast<size_t>(dim)); }
  Value stride(int dim) const { return strides.at(static_cast<size_t>(dim)); }
};

// A C++ number used as an operand; it takes the dtype of the value it meets (an integer
// literal next to an f16 tile becomes f16; a float literal next to an integer tile makes f32).
struct Literal {
  double value;
  bool is_float;
  template <typename T, std::enable_if_t<std::is_arithmetic_v<T>, int> = 0>
  Literal(T v) : value(static_cast<double>(v)), is_float(std::is_floating_point_v<T>) {}  // NOLINT
};

class KernelBuilder {
 public:
  KernelBuilder(std::string name, Config config = {});

  const Config& config() const { return config_; }
  // A meta-parameter of the config; it is also recorded in the IR.
  int64_t meta(const std::string& name);

  // Parameters, in launch order (pointers and scalars are passed by the caller; a tensor_arg's
  // sizes and strides come from its tensor).
  Value pointer_arg(const std::string& name, DType dtype);
  Value scalar_arg(const std::string& name, DType dtype);
  TensorArg tensor_arg(const std::string& name, DType dtype, int rank);

  Value program_id(int axis = 0);
  Value num_programs(int axis = 0);
  Value arange(int64_t start, int64_t end);
  Value constant(Literal value, DType dtype);
  Value full(std::vector<int64_t> shape, Literal value, DType dtype);
  Value zeros(std::vector<int64_t> shape, DType dtype) { return full(std::move(shape), 0, dtype); }

  // Masked-off lanes read `other` (0 when absent) and are never dereferenced.
  Value load(Value ptr, Value mask = {}, Value other = {});
  Value load(Value ptr, Value mask, Literal other);
  void store(Value ptr, Value value, Value mask = {});
  void atomic_add(Value ptr, Value value, Value mask = {});
  void atomic_max(Value ptr, Value value, Value mask = {});

  Value neg(Value x) { return unary(ir::OpKind::kNeg, x); }
  Value logical_not(Value x) { return unary(ir::OpKind::kNot, x); }
  Value abs(Value x) { return unary(ir::OpKind::kAbs, x); }
  Value exp(Value x) { return unary(ir::OpKind::kExp, x); }
  Value exp2(Value x) { return unary(ir::OpKind::kExp2, x); }
  Value log(Value x) { return unary(ir::OpKind::kLog, x); }
  Value log2(Value x) { return unary(ir::OpKind::kLog2, x); }
  Value sqrt(Value x) { return unary(ir::OpKind::kSqrt, x); }
  Value rsqrt(Value x) { return unary(ir::OpKind::kRsqrt, x); }
  Value sin(Value x) { return unary(ir::OpKind::kSin, x); }
  Value cos(Value x) { return unary(ir::OpKind::kCos, x); }
  Value tanh(Value x) { return unary(ir::OpKind::kTanh, x); }
  Value erf(Value x) { return unary(ir::OpKind::kErf, x); }
  Value floor(Value x) { return unary(ir::OpKind::kFloor, x); }
  Value ceil(Value x) { return unary(ir::OpKind::kCeil, x); }
  Value pow(Value x, Value y) { return binary(ir::OpKind::kPow, x, y); }
  Value minimum(Value x, Value y) { return binary(ir::OpKind::kMin, x, y); }
  Value maximum(Value x, Value y) { return binary(ir::OpKind::kMax, x, y); }
  Value where(Value cond, Value a, Value b);
  Value cast(Value x, DType dtype);

  Value sum(Value x, int axis, bool keepdims = false) {
    return reduce(ir::OpKind::kReduceSum, x, axis, keepdims);
  }
  Value max(Value x, int axis, bool keepdims = false) {
    return reduce(ir::OpKind::kReduceMax, x, axis, keepdims);
  }
  Value min(Value x, int axis, bool keepdims = false) {
    return reduce(ir::OpKind::kReduceMin, x, axis, keepdims);
  }
  Value argmax(Value x, int axis, bool keepdims = false) {
    return reduce(ir::OpKind::kArgMax, x, axis, keepdims);
  }
  Value argmin(Value x, int axis, bool keepdims = false) {
    return reduce(ir::OpKind::kArgMin, x, axis, keepdims);
  }
  // a[M,K] @ b[K,N] (+ acc), accumulated in f32.
  Value dot(Value a, Value b, Value acc = {});

  // for (iv = lo; iv < hi; iv += step), carrying `init` values; body returns the next ones.
  // step must be positive. Returns the carried values after the last iteration.
  using LoopBody = std::function<std::vector<Value>(Value iv, std::vector<Value> carried)>;
  std::vector<Value> for_range(Value lo, Value hi, Value step, std::vector<Value> init,
                               const LoopBody& body);
  std::vector<Value> for_range(Literal lo, Value hi, Literal step, std::vector<Value> init,
                               const LoopBody& body);
  std::vector<Value> for_range(Literal lo, Literal hi, Literal step, std::vector<Value> init,
                               const LoopBody& body);

  // Lower-level entry points used by the operators on Value.
  Value unary(ir::OpKind kind, Value x);
  Value binary(ir::OpKind kind, Value a, Value b);
  Value binary(ir::OpKind kind, Value a, Literal b);
  Value binary(ir::OpKind kind, Literal a, Value b);
  Value reduce(ir::OpKind kind, Value x, int axis, bool keepdims);
  Value literal_like(Literal value, const Value& like);
  Value broadcast(Value x, const std::vector<int64_t>& shape);
  Value shape_op(ir::OpKind kind, Value x, std::vector<int64_t> shape, std::vector<int64_t> attrs);

  const ir::Function& function() const { return fn_; }
  // Verifies the whole kernel and hands it over; the builder is empty afterwards.
  ir::Function finish();

 private:
  Value emit(ir::Op op, std::vector<ir::Type> result_types);
  Value add_param(const std::string& name, ir::Type type, ir::ParamRole role, int tensor, int dim);
  ir::Block& current() { return *blocks_.back(); }
  // Brings a and b to one dtype and shape (numpy broadcasting), as binary ops need.
  void unify(Value& a, Value& b);
  Value promote(Value x, DType dtype);

  Config config_;
  ir::Function fn_;
  std::vector<ir::Block*> blocks_;
};

// A kernel definition: fills a builder (reading meta-parameters with k.meta()).
using BuildFn = std::function<void(KernelBuilder&)>;

// Operators: Value with Value or with a C++ number. `ptr + offsets` builds addptr.
#define FS_COMPILER_BINARY_OPERATOR(OP, KIND)                \
  inline Value operator OP(const Value& a, const Value& b) { \
    return a.builder()->binary(ir::OpKind::KIND, a, b);      \
  }                                                          \
  inline Value operator OP(const Value& a, Literal b) {      \
    return a.builder()->binary(ir::OpKind::KIND, a, b);      \
  }                                                          \
  inline Value operator OP(Literal a, const Value& b) {      \
    return b.builder()->binary(ir::OpKind::KIND, a, b);      \
  }
FS_COMPILER_BINARY_OPERATOR(+, kAdd)
FS_COMPILER_BINARY_OPERATOR(-, kSub)
FS_COMPILER_BINARY_OPERATOR(*, kMul)
FS_COMPILER_BINARY_OPERATOR(/, kDiv)
FS_COMPILER_BINARY_OPERATOR(%, kRem)
FS_COMPILER_BINARY_OPERATOR(&, kAnd)
FS_COMPILER_BINARY_OPERATOR(|, kOr)
FS_COMPILER_BINARY_OPERATOR(^, kXor)
FS_COMPILER_BINARY_OPERATOR(<<, kShl)
FS_COMPILER_BINARY_OPERATOR(>>, kShr)
FS_COMPILER_BINARY_OPERATOR(==, kEq)
FS_COMPILER_BINARY_OPERATOR(!=, kNe)
FS_COMPILER_BINARY_OPERATOR(<, kLt)
FS_COMPILER_BINARY_OPERATOR(<=, kLe)
FS_COMPILER_BINARY_OPERATOR(>, kGt)
FS_COMPILER_BINARY_OPERATOR(>=, kGe)
#undef FS_COMPILER_BINARY_OPERATOR

inline Value operator-(const Value& a) {
  return a.builder()->neg(a);
}
inline Value operator!(const Value& a) {
  return a.builder()->logical_not(a);
}
inline Value operator~(const Value& a) {
  return a.builder()->logical_not(a);
}
inline Value operator&&(const Value& a, const Value& b) {
  return a & b;
}
inline Value operator||(const Value& a, const Value& b) {
  return a | b;
}

}  // namespace flagstone::compiler
