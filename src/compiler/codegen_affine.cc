// Symbolic analysis of tile addresses and masks for the CUDA GEMM lowerings: a pointer tile as
// base + per-axis coefficients of the tile's row and column index, a mask as per-axis bounds.
//
// The GEMM pipelines (codegen_gemm.cc, codegen_wgmma.cc) use these forms to copy whole 16-byte
// chunks per thread instead of evaluating the load's index arithmetic per element.
#include <algorithm>

#include "codegen_emitter.h"

namespace flagstone::compiler {

namespace {

bool zero(const std::string& s) {
  return s == "0";
}
std::string add(const std::string& a, const std::string& b) {
  if (zero(a)) return b;
  if (zero(b)) return a;
  return "(" + a + " + " + b + ")";
}
std::string sub(const std::string& a, const std::string& b) {
  if (zero(b)) return a;
  return "(" + a + " - " + b + ")";
}
std::string mul(const std::string& a, const std::string& b) {
  if (zero(a) || zero(b)) return "0";
  if (a == "1") return b;
  if (b == "1") return a;
  return "(" + a + " * " + b + ")";
}
std::string cmin(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  return "(" + a + " < " + b + " ? " + a + " : " + b + ")";
}
std::string land(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  return "(" + a + " && " + b + ")";
}

}  // namespace

const Op* Emitter::def_of(ValueId v) {
  if (defs_.empty())
    ir::walk(fn_.body, [&](const Op& o) {
      for (ValueId r : o.results) defs_[r] = &o;
    });
  auto it = defs_.find(v);
  return it == defs_.end() ? nullptr : it->second;
}

// An integer or pointer value as base + sum over axes of coef[axis] * index[axis], in 64-bit C
// expressions; values defined before the loop enter by name, the loop variable as `fs_k`.
Emitter::Affine Emitter::affine(ValueId v, const GemmScope& scope) {
  Affine a;
  const Type& t = fn_.type(v);
  a.coef.assign(static_cast<size_t>(t.rank()), "0");
  if (v == scope.iv) {
    a.base = "(long long)fs_k";
    a.iv_degree = 1;
    a.ok = true;
    return a;
  }
  if (!t.is_tile() && !scope.defs->count(v) && names_.count(v)) {
    a.base = "(long long)" + name(v);
    if (t.pointer) {
      auto r = roots_.find(v);
      if (r == roots_.end()) return a;
      a.root = r->second;
    }
    a.ok = true;
    return a;
  }
  const Op* op = def_of(v);
  if (!op || op->results.size() != 1) return a;
  auto operand = [&](size_t i) { return affine(op->operands[i], scope); };
  switch (op->kind) {
    case OpKind::kConstant:
      if (is_floating(t.dtype) || t.pointer) return a;
      a.base = std::to_string(op->ivalue) + "LL";
      a.ok = true;
      return a;
    case OpKind::kArange:
      a.base = std::to_string(op->attrs[0]) + "LL";
      a.coef[0] = "1";
      a.ok = true;
      return a;
    case OpKind::kSplat: {
      Affine s = operand(0);
      if (!s.ok) return a;
      a.base = s.base;
      a.root = s.root;
      a.ok = true;
      return a;
    }
    case OpKind::kExpandDims: {
      Affine s = operand(0);
      if (!s.ok) return a;
      s.coef.insert(s.coef.begin() + op->attrs[0], "0");
      return s;
    }
    case OpKind::kBroadcast: {
      Affine s = operand(0);
      if (!s.ok || s.coef.size() != a.coef.size()) return a;
      const Type& st = fn_.type(op->operands[0]);
      for (size_t i = 0; i < s.coef.size(); ++i)
        if (st.shape[i] == 1) s.coef[i] = "0";
      return s;
    }
    case OpKind::kCast:
      if (is_floating(t.dtype) || is_floating(fn_.type(op->operands[0]).dtype)) return a;
      return operand(0);
    case OpKind::kAdd:
    case OpKind::kSub:
    case OpKind::kAddPtr: {
      Affine x = operand(0), y = operand(1);
      if (!x.ok || !y.ok || y.root >= 0 || x.coef.size() != y.coef.size()) return a;
      bool minus = op->kind == OpKind::kSub;
      if (minus && x.root >= 0) return a;
      x.base = minus ? sub(x.base, y.base) : add(x.base, y.base);
      for (size_t i = 0; i < x.coef.size(); ++i)
        x.coef[i] = minus ? sub(x.coef[i], y.coef[i]) : add(x.coef[i], y.coef[i]);
      x.iv_degree = std::max(x.iv_degree, y.iv_degree);
      x.iv_in_coef |= y.iv_in_coef;
      return x;
    }
    case OpKind::kMul: {
      Affine x = operand(0), y = operand(1);
      if (!x.ok || !y.ok || x.root >= 0 || y.root >= 0) return a;
      bool x_uniform = std::all_of(x.coef.begin(), x.coef.end(), zero);
      bool y_uniform = std::all_of(y.coef.begin(), y.coef.end(), zero);
      if (!x_uniform && !y_uniform) return a;
      if (!x_uniform) std::swap(x, y);  // x is the uniform factor
      y.base = mul(x.base, y.base);
      for (auto& c : y.coef) {
        c = mul(x.base, c);
        y.iv_in_coef |= x.iv_degree > 0 && !zero(c);
      }
      y.iv_degree += x.iv_degree;
      y.iv_in_coef |= x.iv_in_coef;
      return y;
    }
    default:
      return a;
  }
}

// A bool tile as a conjunction of `index[axis] < lim[axis]` and a uniform condition.
Emitter::Bounds Emitter::bounds(ValueId v, const GemmScope& scope) {
  Bounds b;
  const Type& t = fn_.type(v);
  b.lim.assign(static_cast<size_t>(t.rank()), "");
  if (!t.is_tile() && !scope.defs->count(v) && names_.count(v)) {
    b.cond = name(v);
    b.ok = true;
    return b;
  }
  const Op* op = def_of(v);
  if (!op || op->results.size() != 1) return b;
  switch (op->kind) {
    case OpKind::kConstant:
      if (op->ivalue == 0) b.cond = "false";
      b.ok = true;
      return b;
    case OpKind::kSplat: {
      Bounds s = bounds(op->operands[0], scope);
      if (!s.ok) return b;
      b.cond = s.cond;
      b.ok = true;
      return b;
    }
    case OpKind::kExpandDims: {
      Bounds s = bounds(op->operands[0], scope);
      if (!s.ok) return b;
      s.lim.insert(s.lim.begin() + op->attrs[0], "");
      return s;
    }
    case OpKind::kBroadcast:
      return bounds(op->operands[0], scope);
    case OpKind::kAnd: {
      Bounds x = bounds(op->operands[0], scope), y = bounds(op->operands[1], scope);
      if (!x.ok || !y.ok || x.lim.size() != y.lim.size()) return b;
      for (size_t i = 0; i < x.lim.size(); ++i) x.lim[i] = cmin(x.lim[i], y.lim[i]);
      x.cond = land(x.cond, y.cond);
      return x;
    }
    case OpKind::kLt:
    case OpKind::kLe:
    case OpKind::kGt:
    case OpKind::kGe: {
      // Normalised to lhs < rhs (+1 for the non-strict forms).
      bool swap = op->kind == OpKind::kGt || op->kind == OpKind::kGe;
      bool strict = op->kind == OpKind::kLt || op->kind == OpKind::kGt;
      Affine lhs = affine(op->operands[swap ? 1 : 0], scope);
      Affine rhs = affine(op->operands[swap ? 0 : 1], scope);
      if (!lhs.ok || !rhs.ok || lhs.root >= 0 || rhs.root >= 0) return b;
      if (!std::all_of(rhs.coef.begin(), rhs.coef.end(), zero)) return b;
      std::string limit = strict ? sub(rhs.base, lhs.base) : add(sub(rhs.base, lhs.base), "1LL");
      int axis = -1;
      for (size_t i = 0; i < lhs.coef.size(); ++i) {
        if (zero(lhs.coef[i])) continue;
        if (lhs.coef[i] != "1" || axis >= 0) return b;
        axis = static_cast<int>(i);
      }
      if (axis < 0)
        b.cond = "(" + limit + " > 0)";
      else
        b.lim[static_cast<size_t>(axis)] = limit;
      b.ok = true;
      return b;
    }
    default:
      return b;
  }
}

}  // namespace flagstone::compiler
