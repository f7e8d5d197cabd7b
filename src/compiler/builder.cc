// KernelBuilder: turns the C++ kernel language into verified IR, one op at a time. Implicit
// conversions (dtype promotion, numpy broadcasting, scalar literals) happen here, as explicit
// cast/splat/broadcast ops, so the IR itself stays strict.
#include "flagstone/compiler/builder.h"

#include <algorithm>
#include <cmath>

#include "flagstone/base/error.h"

namespace flagstone::compiler {

using ir::Op;
using ir::OpKind;
using ir::Type;

int64_t Config::get(const std::string& name) const {
  auto it = values_.find(name);
  FS_CHECK(it != values_.end(), kInvalidArgument, "meta-parameter '", name,
           "' is not set in config {", str(), "}");
  return it->second;
}

int64_t Config::get_or(const std::string& name, int64_t fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

std::string Config::str() const {
  std::string s;
  for (const auto& [key, value] : values_) {
    if (!s.empty()) s += ",";
    s += key + "=" + std::to_string(value);
  }
  return s;
}

const ir::Type& Value::type() const {
  FS_CHECK(valid(), kInvalidArgument, "use of an empty Value (it was never assigned)");
  return builder_->function().type(id_);
}

Value Value::to(DType dtype) const {
  return builder_->cast(*this, dtype);
}

Value Value::reshape(std::vector<int64_t> shape) const {
  return builder_->shape_op(OpKind::kReshape, *this, std::move(shape), {});
}

Value Value::broadcast_to(std::vector<int64_t> shape) const {
  return builder_->broadcast(*this, shape);
}

Value Value::expand_dims(int axis) const {
  std::vector<int64_t> shape = this->shape();
  FS_CHECK(axis >= 0 && axis <= static_cast<int>(shape.size()), kInvalidArgument,
           "expand_dims: axis ", axis, " out of range for ", type().str());
  shape.insert(shape.begin() + axis, 1);
  if (!is_tile()) return builder_->broadcast(*this, shape);
  return builder_->shape_op(OpKind::kExpandDims, *this, shape, {axis});
}

Value Value::trans() const {
  const auto& s = shape();
  FS_CHECK(s.size() == 2, kInvalidArgument, "trans needs a 2-d tile, got ", type().str());
  return builder_->shape_op(OpKind::kTrans, *this, {s[1], s[0]}, {});
}

KernelBuilder::KernelBuilder(std::string name, Config config) : config_(std::move(config)) {
  fn_.name = std::move(name);
  blocks_.push_back(&fn_.body);
  fn_.meta["num_warps"] = config_.num_warps();
  fn_.meta["num_stages"] = config_.num_stages();
  // CUDA hints, when asked for: programs per SM to fit in registers (__launch_bounds__),
  // whether the GEMM pipeline double-buffers its fragments, and on sm_90 whether it uses
  // warpgroup MMA (default on) and the tensor memory accelerator.
  for (const char* hint : {"occupancy", "prefetch", "wgmma", "tma", "mn_swap"})
    if (config_.has(hint)) fn_.meta[hint] = config_.get(hint);
}

int64_t KernelBuilder::meta(const std::string& name) {
  int64_t value = config_.get(name);
  fn_.meta[name] = value;
  return value;
}

Value KernelBuilder::emit(Op op, std::vector<Type> result_types) {
  for (Type& t : result_types) op.results.push_back(fn_.new_value(std::move(t)));
  ir::verify_op(fn_, op);
  ir::ValueId first = op.results.empty() ? ir::kNoValue : op.results[0];
  current().ops.push_back(std::move(op));
  return first == ir::kNoValue ? Value() : Value(this, first);
}

Value KernelBuilder::add_param(const std::string& name, Type type, ir::ParamRole role, int tensor,
                               int dim) {
  FS_CHECK(!name.empty() && !std::isdigit(static_cast<unsigned char>(name[0])), kInvalidArgument,
           "kernel '", fn_.name, "': parameter name '", name, "' must start with a letter");
  for (char c : name)
    FS_CHECK(std::isalnum(static_cast<unsigned char>(c)) || c == '_', kInvalidArgument, "kernel '",
             fn_.name, "': parameter name '", name, "' may hold only letters, digits and '_'");
  for (const ir::Param& p : fn_.params)
    FS_CHECK(p.name != name, kInvalidArgument, "kernel '", fn_.name, "': parameter '", name,
             "' declared twice");
  FS_CHECK(blocks_.size() == 1, kInvalidArgument, "kernel '", fn_.name, "': parameter '", name,
           "' declared inside a loop body");
  ir::Param p;
  p.name = name;
  p.value = fn_.new_value(std::move(type));
  p.role = role;
  p.tensor_param = tensor;
  p.dim = dim;
  fn_.params.push_back(p);
  return Value(this, p.value);
}

Value KernelBuilder::pointer_arg(const std::string& name, DType dtype) {
  return add_param(name, Type{dtype, true, {}}, ir::ParamRole::kPointer, -1, 0);
}

Value KernelBuilder::scalar_arg(const std::string& name, DType dtype) {
  FS_CHECK(
      dtype == DType::kI32 || dtype == DType::kI64 || dtype == DType::kF32 || dtype == DType::kF64,
      kInvalidArgument, "kernel '", fn_.name, "': scalar parameter '", name,
      "' must be i32, i64, f32 or f64, got ", dtype_name(dtype));
  return add_param(name, ir::scalar_type(dtype), ir::ParamRole::kScalar, -1, 0);
}

TensorArg KernelBuilder::tensor_arg(const std::string& name, DType dtype, int rank) {
  FS_CHECK(rank >= 1 && rank <= 8, kInvalidArgument, "tensor parameter '", name,
           "': rank must be 1 to 8, got ", rank);
  TensorArg t;
  t.ptr = pointer_arg(name, dtype);
  int index = static_cast<int>(fn_.params.size()) - 1;
  for (int d = 0; d < rank; ++d)
    t.sizes.push_back(add_param(name + "_size" + std::to_string(d), ir::scalar_type(DType::kI32),
                                ir::ParamRole::kSize, index, d));
  for (int d = 0; d < rank; ++d)
    t.strides.push_back(add_param(name + "_stride" + std::to_string(d),
                                  ir::scalar_type(DType::kI32), ir::ParamRole::kStride, index, d));
  return t;
}

Value KernelBuilder::program_id(int axis) {
  Op op;
  op.kind = OpKind::kProgramId;
  op.attrs = {axis};
  return emit(std::move(op), {ir::scalar_type(DType::kI32)});
}

Value KernelBuilder::num_programs(int axis) {
  Op op;
  op.kind = OpKind::kNumPrograms;
  op.attrs = {axis};
  return emit(std::move(op), {ir::scalar_type(DType::kI32)});
}

Value KernelBuilder::arange(int64_t start, int64_t end) {
  Op op;
  op.kind = OpKind::kArange;
  op.attrs = {start, end};
  return emit(std::move(op), {ir::tile_type(DType::kI32, {std::max<int64_t>(end - start, 1)})});
}

Value KernelBuilder::full(std::vector<int64_t> shape, Literal value, DType dtype) {
  Op op;
  op.kind = OpKind::kConstant;
  if (is_floating(dtype))
    op.fvalue = value.value;
  else if (dtype == DType::kBool)
    op.ivalue = value.value != 0;
  else {
    // Out-of-range float-to-integer conversion is undefined: reject it with the culprit.
    FS_CHECK(std::isfinite(value.value) && std::fabs(value.value) < 9.2e18, kInvalidArgument,
             "kernel '", fn_.name, "': constant ", value.value, " does not fit in ",
             dtype_name(dtype));
    op.ivalue = static_cast<int64_t>(value.value);
  }
  for (int64_t d : shape)
    FS_CHECK(d > 0, kInvalidArgument, "kernel '", fn_.name, "': tile dims must be positive, got ",
             d);
  return emit(std::move(op), {Type{dtype, false, std::move(shape)}});
}

Value KernelBuilder::constant(Literal value, DType dtype) {
  return full({}, value, dtype);
}

Value KernelBuilder::literal_like(Literal value, const Value& like) {
  DType d = like.dtype();
  if (like.is_pointer()) d = DType::kI32;
  if (value.is_float && !is_floating(d)) d = DType::kF32;
  if (d == DType::kBool && value.value != 0 && value.value != 1) d = DType::kI32;
  return constant(value, d);
}

Value KernelBuilder::shape_op(OpKind kind, Value x, std::vector<int64_t> shape,
                              std::vector<int64_t> attrs) {
  Op op;
  op.kind = kind;
  op.operands = {x.id()};
  op.attrs = std::move(attrs);
  return emit(std::move(op), {x.type().with_shape(std::move(shape))});
}

Value KernelBuilder::broadcast(Value x, const std::vector<int64_t>& shape) {
  const Type& t = x.type();
  if (t.shape == shape) return x;
  if (!t.is_tile()) return shape_op(OpKind::kSplat, x, shape, {});
  FS_CHECK(t.rank() <= static_cast<int>(shape.size()), kInvalidArgument, "kernel '", fn_.name,
           "': cannot broadcast ", t.str(), " to rank ", shape.size());
  if (t.rank() < static_cast<int>(shape.size())) {
    std::vector<int64_t> padded(shape.size() - t.shape.size(), 1);
    padded.insert(padded.end(), t.shape.begin(), t.shape.end());
    x = shape_op(OpKind::kReshape, x, padded, {});
    if (padded == shape) return x;
  }
  return shape_op(OpKind::kBroadcast, x, shape, {});
}

namespace {

int dtype_rank(DType d) {
  switch (d) {
    case DType::kBool:
      return 0;
    case DType::kU8:
      return 1;
    case DType::kI8:
      return 1;
    case DType::kI16:
      return 2;
    case DType::kI32:
      return 3;
    case DType::kI64:
      return 4;
    case DType::kF16:
      return 5;
    case DType::kBF16:
      return 5;
    case DType::kF32:
      return 6;
    case DType::kF64:
      return 7;
    default:
      return -1;
  }
}

DType promote_dtypes(DType a, DType b) {
  if (a == b) return a;
  if ((a == DType::kF16 && b == DType::kBF16) || (a == DType::kBF16 && b == DType::kF16))
    return DType::kF32;
  if ((a == DType::kU8 && b == DType::kI8) || (a == DType::kI8 && b == DType::kU8))
    return DType::kI16;
  return dtype_rank(a) >= dtype_rank(b) ? a : b;
}

std::vector<int64_t> broadcast_shapes(const std::string& kernel, const Type& a, const Type& b) {
  size_t rank = std::max(a.shape.size(), b.shape.size());
  std::vector<int64_t> out(rank, 1);
  for (size_t i = 0; i < rank; ++i) {
    int64_t da = i < rank - a.shape.size() ? 1 : a.shape[i - (rank - a.shape.size())];
    int64_t db = i < rank - b.shape.size() ? 1 : b.shape[i - (rank - b.shape.size())];
    FS_CHECK(da == db || da == 1 || db == 1, kInvalidArgument, "kernel '", kernel, "': shapes of ",
             a.str(), " and ", b.str(), " do not broadcast");
    out[i] = std::max(da, db);
  }
  return out;
}

}  // namespace

Value KernelBuilder::promote(Value x, DType dtype) {
  return x.dtype() == dtype ? x : cast(x, dtype);
}

void KernelBuilder::unify(Value& a, Value& b) {
  DType d = promote_dtypes(a.dtype(), b.dtype());
  a = promote(a, d);
  b = promote(b, d);
  std::vector<int64_t> shape = broadcast_shapes(fn_.name, a.type(), b.type());
  a = broadcast(a, shape);
  b = broadcast(b, shape);
}

Value KernelBuilder::unary(OpKind kind, Value x) {
  Op op;
  op.kind = kind;
  op.operands = {x.id()};
  return emit(std::move(op), {x.type()});
}

Value KernelBuilder::binary(OpKind kind, Value a, Value b) {
  FS_CHECK(a.valid() && b.valid(), kInvalidArgument, "kernel '", fn_.name,
           "': ", ir::op_info(kind).name, " of an empty Value");
  if (kind == OpKind::kAdd && (a.is_pointer() || b.is_pointer())) {
    if (b.is_pointer()) std::swap(a, b);
    std::vector<int64_t> shape = broadcast_shapes(fn_.name, a.type(), b.type());
    a = broadcast(a, shape);
    b = broadcast(b, shape);
    Op op;
    op.kind = OpKind::kAddPtr;
    op.operands = {a.id(), b.id()};
    return emit(std::move(op), {a.type()});
  }
  if (!a.is_pointer() && !b.is_pointer()) unify(a, b);
  const ir::OpInfo& info = ir::op_info(kind);
  if (info.float_only && !is_floating(a.dtype())) {
    a = promote(a, DType::kF32);
    b = promote(b, DType::kF32);
  }
  Op op;
  op.kind = kind;
  op.operands = {a.id(), b.id()};
  Type result = a.type();
  if (info.op_class == ir::OpClass::kCompare) result.dtype = DType::kBool;
  return emit(std::move(op), {result});
}

Value KernelBuilder::binary(OpKind kind, Value a, Literal b) {
  return binary(kind, a, literal_like(b, a));
}

Value KernelBuilder::binary(OpKind kind, Literal a, Value b) {
  return binary(kind, literal_like(a, b), b);
}

Value KernelBuilder::where(Value cond, Value a, Value b) {
  unify(a, b);
  std::vector<int64_t> shape = broadcast_shapes(fn_.name, cond.type(), a.type());
  cond = broadcast(cond, shape);
  a = broadcast(a, shape);
  b = broadcast(b, shape);
  Op op;
  op.kind = OpKind::kSelect;
  op.operands = {cond.id(), a.id(), b.id()};
  return emit(std::move(op), {a.type()});
}

Value KernelBuilder::cast(Value x, DType dtype) {
  if (x.dtype() == dtype && !x.is_pointer()) return x;
  Op op;
  op.kind = OpKind::kCast;
  op.operands = {x.id()};
  Type t = x.type();
  t.dtype = dtype;
  return emit(std::move(op), {t});
}

Value KernelBuilder::reduce(OpKind kind, Value x, int axis, bool keepdims) {
  const Type& t = x.type();
  if (axis < 0) axis += t.rank();
  std::vector<int64_t> shape = t.shape;
  if (axis >= 0 && axis < t.rank()) {
    if (keepdims)
      shape[static_cast<size_t>(axis)] = 1;
    else
      shape.erase(shape.begin() + axis);
  }
  Op op;
  op.kind = kind;
  op.operands = {x.id()};
  op.attrs = {axis, keepdims ? 1 : 0};
  DType d = (kind == OpKind::kArgMax || kind == OpKind::kArgMin) ? DType::kI32 : t.dtype;
  return emit(std::move(op), {Type{d, false, shape}});
}

Value KernelBuilder::dot(Value a, Value b, Value acc) {
  Op op;
  op.kind = OpKind::kDot;
  op.operands = {a.id(), b.id()};
  if (acc.valid()) op.operands.push_back(acc.id());
  const Type& ta = a.type();
  const Type& tb = b.type();
  int64_t m = ta.rank() == 2 ? ta.shape[0] : 1;
  int64_t n = tb.rank() == 2 ? tb.shape[1] : 1;
  return emit(std::move(op), {Type{DType::kF32, false, {m, n}}});
}

Value KernelBuilder::load(Value ptr, Value mask, Value other) {
  Op op;
  op.kind = OpKind::kLoad;
  std::vector<int64_t> shape = ptr.shape();
  if (mask.valid() && mask.shape() != shape && ptr.is_tile() == false && mask.is_tile()) {
    ptr = broadcast(ptr, mask.shape());
    shape = mask.shape();
  }
  op.operands = {ptr.id()};
  if (mask.valid()) {
    op.operands.push_back(broadcast(mask, shape).id());
    if (other.valid()) {
      if (other.dtype() != ptr.dtype() && !other.is_pointer()) other = cast(other, ptr.dtype());
      op.operands.push_back(broadcast(other, shape).id());
    }
  }
  Type t = ptr.type();
  t.pointer = false;
  return emit(std::move(op), {t});
}

Value KernelBuilder::load(Value ptr, Value mask, Literal other) {
  return load(ptr, mask, constant(other, ptr.dtype()));
}

namespace {
void emit_store_like(KernelBuilder& b, OpKind kind, Value ptr, Value value, Value mask,
                     ir::Op& op) {
  op.kind = kind;
  std::vector<int64_t> shape = ptr.shape();
  op.operands = {ptr.id(), b.broadcast(value, shape).id()};
  if (mask.valid()) op.operands.push_back(b.broadcast(mask, shape).id());
}
}  // namespace

void KernelBuilder::store(Value ptr, Value value, Value mask) {
  Op op;
  emit_store_like(*this, OpKind::kStore, ptr, value, mask, op);
  emit(std::move(op), {});
}

void KernelBuilder::atomic_add(Value ptr, Value value, Value mask) {
  Op op;
  emit_store_like(*this, OpKind::kAtomicAdd, ptr, value, mask, op);
  emit(std::move(op), {});
}

void KernelBuilder::atomic_max(Value ptr, Value value, Value mask) {
  Op op;
  emit_store_like(*this, OpKind::kAtomicMax, ptr, value, mask, op);
  emit(std::move(op), {});
}

std::vector<Value> KernelBuilder::for_range(Value lo, Value hi, Value step, std::vector<Value> init,
                                            const LoopBody& body) {
  DType d = promote_dtypes(promote_dtypes(lo.dtype(), hi.dtype()), step.dtype());
  lo = promote(lo, d);
  hi = promote(hi, d);
  step = promote(step, d);
  Op op;
  op.kind = OpKind::kFor;
  op.operands = {lo.id(), hi.id(), step.id()};
  for (const Value& v : init) op.operands.push_back(v.id());
  op.body = std::make_unique<ir::Block>();
  ir::Block* block = op.body.get();
  Value iv(this, fn_.new_value(lo.type()));
  block->args.push_back(iv.id());
  std::vector<Value> carried;
  for (const Value& v : init) {
    carried.emplace_back(this, fn_.new_value(v.type()));
    block->args.push_back(carried.back().id());
  }
  blocks_.push_back(block);
  std::vector<Value> next;
  try {
    next = body(iv, carried);
  } catch (...) {
    blocks_.pop_back();
    throw;
  }
  Op yield;
  yield.kind = OpKind::kYield;
  for (const Value& v : next) yield.operands.push_back(v.id());
  current().ops.push_back(std::move(yield));
  blocks_.pop_back();
  std::vector<Type> types;
  for (const Value& v : init) types.push_back(v.type());
  Value first = emit(std::move(op), types);
  std::vector<Value> results;
  for (size_t i = 0; i < init.size(); ++i)
    results.emplace_back(this, first.id() + static_cast<int>(i));
  return results;
}

std::vector<Value> KernelBuilder::for_range(Literal lo, Value hi, Literal step,
                                            std::vector<Value> init, const LoopBody& body) {
  return for_range(literal_like(lo, hi), hi, literal_like(step, hi), std::move(init), body);
}

std::vector<Value> KernelBuilder::for_range(Literal lo, Literal hi, Literal step,
                                            std::vector<Value> init, const LoopBody& body) {
  return for_range(constant(lo, DType::kI32), constant(hi, DType::kI32),
                   constant(step, DType::kI32), std::move(init), body);
}

ir::Function KernelBuilder::finish() {
  ir::verify(fn_);
  ir::Function out = std::move(fn_);
  fn_ = ir::Function();
  blocks_ = {&fn_.body};
  return out;
}

}  // namespace flagstone::compiler
