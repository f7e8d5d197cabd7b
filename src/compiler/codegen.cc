// Lowering of the tile IR to C-family source. One emitter serves the cpu (C++), OpenCL C and
// CUDA C++: they differ in types, qualifiers, builtins and barriers, not in structure.
#include "codegen.h"
#include "codegen_emitter.h"

#include <cmath>
#include <cstdio>
#include <unordered_map>

#include "flagstone/base/error.h"

namespace flagstone::compiler {

using ir::Op;
using ir::OpKind;
using ir::Type;
using ir::ValueId;

size_t storage_size(DType dtype) {
  return dtype == DType::kBool ? 1 : dtype_size(dtype);
}

std::string Emitter::ct(DType t) const {
  bool ocl = d_ == Dialect::kOpenCL;
  bool cuda = d_ == Dialect::kCuda;
  switch (t) {
    case DType::kF64:
      return "double";
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
      return "float";
    case DType::kI64:
      return ocl ? "long" : cuda ? "long long" : "int64_t";
    case DType::kI32:
      return ocl || cuda ? "int" : "int32_t";
    case DType::kI16:
      return ocl || cuda ? "short" : "int16_t";
    case DType::kI8:
      return ocl ? "char" : cuda ? "signed char" : "int8_t";
    case DType::kU8:
    case DType::kBool:
      return ocl ? "uchar" : cuda ? "unsigned char" : "uint8_t";
    default:
      throw_error(ErrorCategory::kUnsupported, "codegen: dtype ", dtype_name(t),
                  " cannot be computed on");
  }
}

std::string Emitter::st(DType t) const {
  if (t == DType::kF16 || t == DType::kBF16)
    return d_ == Dialect::kOpenCL ? "ushort" : d_ == Dialect::kCuda ? "unsigned short" : "uint16_t";
  if (t == DType::kF32) return "float";
  return ct(t);
}

std::string Emitter::declare(ValueId id, const std::string& init) {
  const Type& t = fn_.type(id);
  if (!redirect_.empty()) {
    // A prefetch writes into its buffer, declared before the loop.
    names_[id] = redirect_;
    return redirect_;
  }
  std::string n = "v" + std::to_string(id);
  names_[id] = n;
  if (t.is_tile()) {
    std::string align = d_ == Dialect::kCpu ? "alignas(64) " : "";
    line(align + vtype(t) + " " + n + "[" + std::to_string(elems(t)) + "];");
  } else {
    line(vtype(t) + " " + n + (init.empty() ? "" : " = " + init) + ";");
  }
  return n;
}

void Emitter::begin_elems(const Type& t) {
  int64_t numel = t.numel();
  if (!gpu()) {
    open("for (int j = 0; j < " + std::to_string(numel) + "; ++j)");
    line("const int f = j; (void)f;");
    return;
  }
  int64_t e = (numel + threads_ - 1) / threads_;
  // Unrolled, so that tile arrays are indexed by constants and stay in registers.
  if (d_ == Dialect::kCuda) line("#pragma unroll");
  open("for (int j = 0; j < " + std::to_string(e) + "; ++j)");
  if (const MmaLayout* mma = mma_layout(t)) {
    line("const int f = " + mma_flat_index(*mma, "j") + ";");
    return;
  }
  if (int64_t v = vec_width(t); v > 1) {
    std::string vs = std::to_string(v);
    line("const int f = (j / " + vs + ") * " + std::to_string(threads_ * v) + " + fs_tid * " + vs +
         " + j % " + vs + ";");
    return;
  }
  line("const int f = fs_tid + j * " + std::to_string(threads_) + ";");
  if (numel % threads_ != 0) open("if (f < " + std::to_string(numel) + ")");
}

std::string Emitter::flat_of(const Type& t, const std::string& slot) const {
  if (const MmaLayout* mma = mma_layout(t)) return mma_flat_index(*mma, "(" + slot + ")");
  if (int64_t v = vec_width(t); v > 1) {
    std::string vs = std::to_string(v);
    return "((" + slot + ") / " + vs + ") * " + std::to_string(threads_ * v) + " + fs_tid * " + vs +
           " + (" + slot + ") % " + vs;
  }
  return "fs_tid + (" + slot + ") * " + std::to_string(threads_);
}

int64_t Emitter::vec_width(const Type& t) const {
  constexpr int64_t kVec = 4;
  if (!gpu() || !t.is_tile() || mma_layout(t) || t.numel() % (threads_ * kVec) != 0) return 1;
  return kVec;
}

void Emitter::end_elems(const Type& t) {
  if (gpu() && !mma_layout(t) && t.numel() % threads_ != 0) close();
  close();
}

std::string Emitter::wrap(DType d, const std::string& e) const {
  if (d == DType::kF16) return "fs_rh(" + e + ")";
  if (d == DType::kBF16) return "fs_rbf(" + e + ")";
  if (d == DType::kF32 || d == DType::kF64) return e;
  return "(" + ct(d) + ")(" + e + ")";
}

std::string Emitter::literal(DType d, double fv, int64_t iv) const {
  if (is_floating(d)) {
    bool is_double = d == DType::kF64;
    std::string s;
    if (std::isnan(fv)) {
      s = d_ == Dialect::kOpenCL ? "NAN"
          : d_ == Dialect::kCuda ? "__int_as_float(0x7fc00000)"
                                 : "__builtin_nanf(\"\")";
      return is_double ? "(double)" + s : s;
    }
    if (std::isinf(fv)) {
      s = d_ == Dialect::kOpenCL ? "INFINITY"
          : d_ == Dialect::kCuda ? "__int_as_float(0x7f800000)"
                                 : "__builtin_inff()";
      s = is_double ? "(double)" + s : s;
      return fv < 0 ? "(-" + s + ")" : s;
    }
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%a",
                  is_double ? fv : static_cast<double>(static_cast<float>(fv)));
    s = std::string("(") + buf + (is_double ? "" : "f") + ")";
    return wrap(d, s);
  }
  if (iv == INT64_MIN) return "(" + ct(d) + ")(-9223372036854775807LL - 1)";
  return "(" + ct(d) + ")(" + std::to_string(iv) + "LL)";
}

std::string Emitter::math(const char* base, DType d) const {
  std::string b = base;
  if (d_ == Dialect::kCpu) return b == "rsqrt" ? "fs_rsqrt" : "std::" + b;
  if (d_ == Dialect::kOpenCL) return b;
  return d == DType::kF64 ? b : b + "f";
}

std::string Emitter::load_conv(DType d, const std::string& e) const {
  if (d == DType::kF16) return "fs_h2f(" + e + ")";
  if (d == DType::kBF16) return "fs_bf2f(" + e + ")";
  if (d == DType::kBool) return "(" + ct(d) + ")(" + e + " != 0)";
  return e;
}

std::string Emitter::store_conv(DType d, const std::string& e) const {
  if (d == DType::kF16) return "fs_f2h(" + e + ")";
  if (d == DType::kBF16) return "fs_f2bf(" + e + ")";
  return "(" + st(d) + ")(" + e + ")";
}

std::string Emitter::materialize(ValueId id, int64_t* cursor) {
  if (!gpu()) return name(id);
  const Type& t = fn_.type(id);
  std::string type = vtype(t);
  int64_t size = t.pointer || t.dtype == DType::kF64 || t.dtype == DType::kI64               ? 8
                 : t.dtype == DType::kI16                                                    ? 2
                 : t.dtype == DType::kI8 || t.dtype == DType::kU8 || t.dtype == DType::kBool ? 1
                                                                                             : 4;
  std::string s = "s" + std::to_string(counter_++);
  line(local_q() + type + "* " + s + " = (" + local_q() + type + "*)(fs_scratch + " +
       std::to_string(*cursor) + ");");
  *cursor += (t.numel() * size + 15) / 16 * 16;
  scratch_max_ = std::max(scratch_max_, *cursor);
  begin_elems(t);
  line(s + "[f] = " + name(id) + "[j];");
  end_elems(t);
  return s;
}

std::string Emitter::expr(const Op& op, bool tile) const {
  std::vector<std::string> args;
  for (ValueId v : op.operands) args.push_back(tile ? name(v) + "[j]" : name(v));
  return expr_of(op, args);
}

std::string Emitter::expr_of(const Op& op, const std::vector<std::string>& args) const {
  auto arg = [&](size_t i) { return args[i]; };
  DType d = fn_.type(op.operands[0]).dtype;
  bool flt = is_floating(d);
  std::string a = arg(0);
  std::string b = op.operands.size() > 1 ? arg(1) : "";
  switch (op.kind) {
    case OpKind::kNeg:
      return "(-" + a + ")";
    case OpKind::kNot:
      return d == DType::kBool ? "(!" + a + ")" : "(~" + a + ")";
    case OpKind::kAbs:
      return flt ? math("fabs", d) + "(" + a + ")" : "(" + a + " < 0 ? -" + a + " : " + a + ")";
    case OpKind::kExp:
      return math("exp", d) + "(" + a + ")";
    case OpKind::kExp2:
      return math("exp2", d) + "(" + a + ")";
    case OpKind::kLog:
      return math("log", d) + "(" + a + ")";
    case OpKind::kLog2:
      return math("log2", d) + "(" + a + ")";
    case OpKind::kSqrt:
      return math("sqrt", d) + "(" + a + ")";
    case OpKind::kRsqrt:
      return math("rsqrt", d) + "(" + a + ")";
    case OpKind::kSin:
      return math("sin", d) + "(" + a + ")";
    case OpKind::kCos:
      return math("cos", d) + "(" + a + ")";
    case OpKind::kTanh:
      return math("tanh", d) + "(" + a + ")";
    case OpKind::kErf:
      return math("erf", d) + "(" + a + ")";
    case OpKind::kFloor:
      return math("floor", d) + "(" + a + ")";
    case OpKind::kCeil:
      return math("ceil", d) + "(" + a + ")";
    case OpKind::kAdd:
      return "(" + a + " + " + b + ")";
    case OpKind::kSub:
      return "(" + a + " - " + b + ")";
    case OpKind::kMul:
      return "(" + a + " * " + b + ")";
    case OpKind::kDiv:
      return "(" + a + " / " + b + ")";
    case OpKind::kRem:
      return flt ? math("fmod", d) + "(" + a + ", " + b + ")" : "(" + a + " % " + b + ")";
    case OpKind::kMin:
      return "(" + b + " < " + a + " ? " + b + " : " + a + ")";
    case OpKind::kMax:
      return "(" + a + " < " + b + " ? " + b + " : " + a + ")";
    case OpKind::kPow:
      return math("pow", d) + "(" + a + ", " + b + ")";
    case OpKind::kAnd:
      return "(" + a + " & " + b + ")";
    case OpKind::kOr:
      return "(" + a + " | " + b + ")";
    case OpKind::kXor:
      return "(" + a + " ^ " + b + ")";
    case OpKind::kShl:
      return "(" + a + " << " + b + ")";
    case OpKind::kShr:
      return "(" + a + " >> " + b + ")";
    case OpKind::kEq:
      return "(" + a + " == " + b + ")";
    case OpKind::kNe:
      return "(" + a + " != " + b + ")";
    case OpKind::kLt:
      return "(" + a + " < " + b + ")";
    case OpKind::kLe:
      return "(" + a + " <= " + b + ")";
    case OpKind::kGt:
      return "(" + a + " > " + b + ")";
    case OpKind::kGe:
      return "(" + a + " >= " + b + ")";
    case OpKind::kSelect:
      return "(" + a + " ? " + b + " : " + arg(2) + ")";
    case OpKind::kCast: {
      DType to = fn_.type(op.results[0]).dtype;
      if (to == DType::kBool) return "(" + a + " != 0)";
      if (to == DType::kF16 || to == DType::kBF16) return "(float)(" + a + ")";
      if (is_floating(d) && !is_floating(to) && d_ == Dialect::kOpenCL)
        return "convert_" + ct(to) + "_rtz(" + a + ")";
      return "(" + ct(to) + ")(" + a + ")";
    }
    default:
      FS_ASSERT(false);
  }
}

void Emitter::elementwise(const Op& op, const std::string& expr_j, const std::string& expr_scalar) {
  ValueId r = op.results[0];
  const Type& t = fn_.type(r);
  // Pointer values are element offsets: never rounded or narrowed to the pointee dtype.
  auto fit = [&](const std::string& e) { return t.pointer ? e : wrap(t.dtype, e); };
  if (!t.is_tile()) {
    declare(r, fit(expr_scalar));
    return;
  }
  declare(r);
  begin_elems(t);
  line(name(r) + "[j] = " + fit(expr_j) + ";");
  end_elems(t);
}

void Emitter::op(const Op& op) {
  emit_op(op);
  track_index(op);
}

void Emitter::emit_op(const Op& op) {
  auto result_type = [&]() -> const Type& { return fn_.type(op.results[0]); };
  switch (op.kind) {
    case OpKind::kProgramId:
    case OpKind::kNumPrograms: {
      std::string axis = std::to_string(op.attrs[0]);
      std::string xyz = op.attrs[0] == 0 ? "x" : op.attrs[0] == 1 ? "y" : "z";
      std::string e;
      if (op.kind == OpKind::kProgramId)
        e = d_ == Dialect::kCpu      ? "fs_pid" + axis
            : d_ == Dialect::kOpenCL ? "(int)get_group_id(" + axis + ")"
                                     : "(int)blockIdx." + xyz;
      else
        e = d_ == Dialect::kCpu      ? "(int)g" + axis
            : d_ == Dialect::kOpenCL ? "(int)get_num_groups(" + axis + ")"
                                     : "(int)gridDim." + xyz;
      declare(op.results[0], e);
      return;
    }
    case OpKind::kArange:
      elementwise(op, "(" + std::to_string(op.attrs[0]) + " + f)", "");
      return;
    case OpKind::kConstant: {
      std::string lit = literal(result_type().dtype, op.fvalue, op.ivalue);
      ValueId r = op.results[0];
      if (!result_type().is_tile()) {
        declare(r, lit);
        return;
      }
      declare(r);
      begin_elems(result_type());
      line(name(r) + "[j] = " + lit + ";");
      end_elems(result_type());
      return;
    }
    case OpKind::kSplat:
    case OpKind::kReshape:
    case OpKind::kExpandDims: {
      if (fn_.type(op.operands[0]).pointer) roots_[op.results[0]] = roots_.at(op.operands[0]);
      ValueId r = op.results[0];
      const Type& src = fn_.type(op.operands[0]);
      if (src.is_tile() && (mma_layout(src) != mma_layout(result_type()) ||
                            vec_width(src) != vec_width(result_type()))) {
        // Same flat order, different owners: move the elements through scratch memory.
        int64_t cursor = 0;
        barrier();
        std::string s = materialize(op.operands[0], &cursor);
        barrier();
        declare(r);
        begin_elems(result_type());
        line(name(r) + "[j] = " + s + "[f];");
        end_elems(result_type());
        return;
      }
      declare(r);
      begin_elems(result_type());
      line(name(r) + "[j] = " + ref(op.operands[0]) + ";");
      end_elems(result_type());
      return;
    }
    case OpKind::kBroadcast:
    case OpKind::kTrans: {
      if (fn_.type(op.operands[0]).pointer) roots_[op.results[0]] = roots_.at(op.operands[0]);
      const Type& dst = result_type();
      std::string index = move_index(op, "f");
      ValueId r = op.results[0];
      auto g = gen_.find(op.operands[0]);
      if (g != gen_.end()) {
        // Index arithmetic: every thread recomputes the source elements it needs.
        declare(r);
        begin_elems(dst);
        line(name(r) + "[j] = " + at_index(g->second, index) + ";");
        end_elems(dst);
        return;
      }
      int64_t cursor = 0;
      barrier();
      std::string s = materialize(op.operands[0], &cursor);
      barrier();
      declare(r);
      begin_elems(dst);
      line(name(r) + "[j] = " + s + "[" + index + "];");
      end_elems(dst);
      return;
    }
    case OpKind::kAddPtr:
    case OpKind::kLoad:
    case OpKind::kStore:
    case OpKind::kAtomicAdd:
    case OpKind::kAtomicMax:
      memory(op);
      return;
    case OpKind::kReduceSum:
    case OpKind::kReduceMax:
    case OpKind::kReduceMin:
    case OpKind::kArgMax:
    case OpKind::kArgMin:
      reduce(op);
      return;
    case OpKind::kDot:
      dot(op);
      return;
    case OpKind::kFor:
      loop(op);
      return;
    case OpKind::kYield:
      FS_ASSERT(false);
    default:
      elementwise(op, expr(op, true), expr(op, false));
      return;
  }
}

}  // namespace flagstone::compiler
