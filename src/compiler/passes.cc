// Constant folding, CSE and DCE. Folding computes in the precision the targets use (float
// for f32/f16/bf16, then rounds), so a folded kernel gives the same bits as an unfolded one.
#include "flagstone/compiler/passes.h"

#include <cmath>
#include <cstring>
#include <map>
#include <unordered_map>

#include "flagstone/base/error.h"
#include "flagstone/base/half.h"

namespace flagstone::compiler::passes {

using ir::Op;
using ir::OpKind;
using ir::ValueId;

void replace_uses(ir::Block& block, ValueId from, ValueId to) {
  ir::walk_mut(block, [&](Op& op) {
    for (ValueId& v : op.operands)
      if (v == from) v = to;
  });
}

namespace {

struct Const {
  double f = 0;
  int64_t i = 0;
};

double round_float(DType d, double v) {
  if (d == DType::kF64) return v;
  float f = static_cast<float>(v);
  if (d == DType::kF16) return f16_bits_to_float(float_to_f16_bits(f));
  if (d == DType::kBF16) return bf16_bits_to_float(float_to_bf16_bits(f));
  return f;
}

int64_t wrap_int(DType d, int64_t v) {
  switch (d) {
    case DType::kI32:
      return static_cast<int32_t>(static_cast<uint32_t>(v));
    case DType::kI16:
      return static_cast<int16_t>(static_cast<uint16_t>(v));
    case DType::kI8:
      return static_cast<int8_t>(static_cast<uint8_t>(v));
    case DType::kU8:
      return static_cast<uint8_t>(v);
    case DType::kBool:
      return v != 0;
    default:
      return v;
  }
}

// The float ops whose results are exact or correctly rounded in IEEE arithmetic, so folding
// them here gives the bits every target computes, in either precision.
template <typename F>
bool exact_float_op(OpKind k, F x, F y, F* r) {
  switch (k) {
    case OpKind::kNeg:
      *r = -x;
      return true;
    case OpKind::kAbs:
      *r = std::fabs(x);
      return true;
    case OpKind::kFloor:
      *r = std::floor(x);
      return true;
    case OpKind::kCeil:
      *r = std::ceil(x);
      return true;
    case OpKind::kSqrt:
      *r = std::sqrt(x);
      return true;
    case OpKind::kAdd:
      *r = x + y;
      return true;
    case OpKind::kSub:
      *r = x - y;
      return true;
    case OpKind::kMul:
      *r = x * y;
      return true;
    case OpKind::kDiv:
      *r = x / y;
      return true;
    case OpKind::kMin:
      *r = y < x ? y : x;
      return true;
    case OpKind::kMax:
      *r = x < y ? y : x;
      return true;
    default:
      return false;
  }
}

// Float math in the precision of the dtype, as generated code does it.
double float_op(OpKind k, DType d, double a, double b, bool* ok) {
  if (d == DType::kF64) {
    double r = 0;
    if (exact_float_op(k, a, b, &r)) return r;
    switch (k) {
      case OpKind::kExp:
        return std::exp(a);
      case OpKind::kExp2:
        return std::exp2(a);
      case OpKind::kLog:
        return std::log(a);
      case OpKind::kLog2:
        return std::log2(a);
      case OpKind::kRsqrt:
        return 1.0 / std::sqrt(a);
      case OpKind::kSin:
        return std::sin(a);
      case OpKind::kCos:
        return std::cos(a);
      case OpKind::kTanh:
        return std::tanh(a);
      case OpKind::kErf:
        return std::erf(a);
      case OpKind::kRem:
        return std::fmod(a, b);
      case OpKind::kPow:
        return std::pow(a, b);
      default:
        *ok = false;
        return 0;
    }
  }
  // f32, f16, bf16: computed in f32 and rounded to the dtype. Transcendentals differ by an ulp
  // between libraries; they are left to the target.
  float r = 0;
  if (!exact_float_op(k, static_cast<float>(a), static_cast<float>(b), &r)) {
    *ok = false;
    return 0;
  }
  return round_float(d, r);
}

int64_t int_op(OpKind k, DType d, int64_t a, int64_t b, bool* ok) {
  uint64_t ua = static_cast<uint64_t>(a);
  uint64_t ub = static_cast<uint64_t>(b);
  switch (k) {
    case OpKind::kNeg:
      return wrap_int(d, static_cast<int64_t>(0 - ua));
    case OpKind::kNot:
      return d == DType::kBool ? !a : wrap_int(d, ~a);
    case OpKind::kAbs:
      return wrap_int(d, a < 0 ? static_cast<int64_t>(0 - ua) : a);
    case OpKind::kAdd:
      return wrap_int(d, static_cast<int64_t>(ua + ub));
    case OpKind::kSub:
      return wrap_int(d, static_cast<int64_t>(ua - ub));
    case OpKind::kMul:
      return wrap_int(d, static_cast<int64_t>(ua * ub));
    case OpKind::kDiv:
      if (b == 0 || (b == -1 && a == INT64_MIN)) break;
      return wrap_int(d, a / b);
    case OpKind::kRem:
      if (b == 0 || b == -1) break;
      return wrap_int(d, a % b);
    case OpKind::kMin:
      return b < a ? b : a;
    case OpKind::kMax:
      return a < b ? b : a;
    case OpKind::kAnd:
      return a & b;
    case OpKind::kOr:
      return a | b;
    case OpKind::kXor:
      return a ^ b;
    case OpKind::kShl:
      if (b < 0 || b >= 31 || a < 0) break;
      return wrap_int(d, static_cast<int64_t>(ua << b));
    case OpKind::kShr:
      if (b < 0 || b >= 31) break;
      return a >> b;
    default:
      break;
  }
  *ok = false;
  return 0;
}

// One comparison for both kinds of constants: doubles compare as IEEE (NaN unordered) and
// integers exactly, as the generated code does.
template <typename T>
bool compare(OpKind k, T a, T b) {
  switch (k) {
    case OpKind::kEq:
      return a == b;
    case OpKind::kNe:
      return a != b;
    case OpKind::kLt:
      return a < b;
    case OpKind::kLe:
      return a <= b;
    case OpKind::kGt:
      return a > b;
    default:
      return a >= b;
  }
}

class Folder {
 public:
  explicit Folder(ir::Function& fn) : fn_(fn) {}

  int run() {
    fold_block(fn_.body);
    for (auto [from, to] : replaced_) replace_uses(fn_.body, from, to);
    return changes_;
  }

 private:
  bool is_float(ValueId v) const { return is_floating(fn_.type(v).dtype); }
  const Const* constant(ValueId v) const {
    auto it = consts_.find(resolve(v));
    return it == consts_.end() ? nullptr : &it->second;
  }
  ValueId resolve(ValueId v) const {
    auto it = replaced_.find(v);
    return it == replaced_.end() ? v : it->second;
  }
  void make_constant(Op& op, Const c) {
    op.kind = OpKind::kConstant;
    op.operands.clear();
    op.attrs.clear();
    op.fvalue = c.f;
    op.ivalue = c.i;
    consts_[op.results[0]] = c;
    ++changes_;
  }
  void forward(Op& op, ValueId to) {
    replaced_[op.results[0]] = resolve(to);
    ++changes_;
  }

  void fold_block(ir::Block& block) {
    for (Op& op : block.ops) {
      for (ValueId& v : op.operands) v = resolve(v);
      if (op.body) {
        fold_block(*op.body);
        continue;
      }
      if (op.kind == OpKind::kConstant) {
        consts_[op.results[0]] = Const{op.fvalue, op.ivalue};
        continue;
      }
      fold_op(op);
    }
  }

  void fold_op(Op& op) {
    ir::OpClass cls = ir::op_info(op.kind).op_class;
    if (op.results.size() != 1 || cls == ir::OpClass::kMemory || cls == ir::OpClass::kReduce ||
        cls == ir::OpClass::kDot || cls == ir::OpClass::kIndex)
      return;
    std::vector<const Const*> c;
    for (ValueId v : op.operands) c.push_back(constant(v));
    bool all = true;
    for (const Const* p : c) all &= p != nullptr;
    DType rd = fn_.type(op.results[0]).dtype;
    if (!all) {
      identities(op, c);
      return;
    }
    if (fn_.type(op.results[0]).pointer) return;
    Const out;
    bool ok = true;
    DType d = fn_.type(op.operands[0]).dtype;
    bool flt = is_floating(d);
    switch (cls) {
      case ir::OpClass::kShape:
        out = *c[0];
        break;
      case ir::OpClass::kUnary:
      case ir::OpClass::kBinary: {
        const Const zero;
        const Const& b = c.size() > 1 ? *c[1] : zero;
        if (flt)
          out.f = float_op(op.kind, d, c[0]->f, b.f, &ok);
        else
          out.i = int_op(op.kind, d, c[0]->i, b.i, &ok);
        break;
      }
      case ir::OpClass::kCompare:
        out.i = flt ? compare(op.kind, c[0]->f, c[1]->f) : compare(op.kind, c[0]->i, c[1]->i);
        break;
      case ir::OpClass::kSelect:
        out = c[0]->i ? *c[1] : *c[2];
        break;
      case ir::OpClass::kCast:
        if (is_floating(rd)) {
          out.f = round_float(rd, flt ? c[0]->f : static_cast<double>(c[0]->i));
        } else if (rd == DType::kBool) {
          out.i = flt ? c[0]->f != 0 : c[0]->i != 0;
        } else if (flt) {
          double t = std::trunc(c[0]->f);
          ok = std::isfinite(t) && std::fabs(t) < 9.2e18;
          if (ok) out.i = wrap_int(rd, static_cast<int64_t>(t));
          ok = ok && out.i == static_cast<int64_t>(t);  // out of range is undefined: keep
        } else {
          out.i = wrap_int(rd, c[0]->i);
        }
        break;
      default:
        ok = false;
    }
    if (ok) make_constant(op, out);
  }

  void identities(Op& op, const std::vector<const Const*>& c) {
    DType d = fn_.type(op.results[0]).dtype;
    bool flt = is_floating(d);
    auto is_value = [&](size_t i, double v) {
      if (i >= c.size() || c[i] == nullptr) return false;
      return flt ? c[i]->f == v && !std::signbit(c[i]->f) : c[i]->i == static_cast<int64_t>(v);
    };
    bool same_type = op.operands.size() >= 1 && fn_.type(op.operands[0]) == fn_.type(op.results[0]);
    switch (op.kind) {
      case OpKind::kMul:
        if (is_value(1, 1) && same_type) return forward(op, op.operands[0]);
        if (is_value(0, 1) && fn_.type(op.operands[1]) == fn_.type(op.results[0]))
          return forward(op, op.operands[1]);
        break;
      case OpKind::kAdd:
        if (flt) break;
        if (is_value(1, 0) && same_type) return forward(op, op.operands[0]);
        if (is_value(0, 0)) return forward(op, op.operands[1]);
        break;
      case OpKind::kSub:
        if (is_value(1, 0) && same_type) return forward(op, op.operands[0]);
        break;
      case OpKind::kAnd:
        if (d == DType::kBool && is_value(1, 1)) return forward(op, op.operands[0]);
        if (d == DType::kBool && is_value(0, 1)) return forward(op, op.operands[1]);
        break;
      case OpKind::kOr:
        if (d == DType::kBool && is_value(1, 0)) return forward(op, op.operands[0]);
        if (d == DType::kBool && is_value(0, 0)) return forward(op, op.operands[1]);
        break;
      case OpKind::kSelect:
        if (c[0]) return forward(op, c[0]->i ? op.operands[1] : op.operands[2]);
        if (op.operands[1] == op.operands[2]) return forward(op, op.operands[1]);
        break;
      default:
        break;
    }
  }

  ir::Function& fn_;
  std::unordered_map<ValueId, Const> consts_;
  std::unordered_map<ValueId, ValueId> replaced_;
  int changes_ = 0;
};

std::string cse_key(const ir::Function& fn, const Op& op) {
  std::string key(ir::op_info(op.kind).name);
  for (ValueId v : op.operands) key += "," + std::to_string(v);
  key += "|";
  for (int64_t a : op.attrs) key += std::to_string(a) + ",";
  uint64_t bits;
  std::memcpy(&bits, &op.fvalue, sizeof(bits));
  key += "|" + std::to_string(op.ivalue) + "|" + std::to_string(bits) + "|";
  for (ValueId r : op.results) key += fn.type(r).str() + ";";
  return key;
}

int cse_block(ir::Function& fn, ir::Block& block, std::map<std::string, ValueId> scope,
              std::unordered_map<ValueId, ValueId>& replaced) {
  int changes = 0;
  for (Op& op : block.ops) {
    for (ValueId& v : op.operands) {
      auto it = replaced.find(v);
      if (it != replaced.end()) v = it->second;
    }
    if (op.body) {
      changes += cse_block(fn, *op.body, scope, replaced);
      continue;
    }
    if (op.results.size() != 1 || !ir::is_pure(op) || op.kind == OpKind::kLoad) continue;
    std::string key = cse_key(fn, op);
    auto it = scope.find(key);
    if (it != scope.end()) {
      replaced[op.results[0]] = it->second;
      ++changes;
    } else {
      scope.emplace(std::move(key), op.results[0]);
    }
  }
  return changes;
}

void count_uses(const ir::Block& block, std::vector<int>& uses) {
  ir::walk(block, [&](const Op& op) {
    for (ValueId v : op.operands) ++uses[static_cast<size_t>(v)];
  });
}

int dce_block(ir::Block& block, std::vector<int>& uses) {
  int removed = 0;
  for (size_t i = block.ops.size(); i-- > 0;) {
    Op& op = block.ops[i];
    if (op.body) removed += dce_block(*op.body, uses);
    if (op.kind == OpKind::kYield || !ir::is_pure(op)) continue;
    bool used = false;
    for (ValueId r : op.results) used |= uses[static_cast<size_t>(r)] > 0;
    if (used) continue;
    for (ValueId v : op.operands) --uses[static_cast<size_t>(v)];
    if (op.body)
      ir::walk(*op.body, [&](const Op& inner) {
        for (ValueId v : inner.operands) --uses[static_cast<size_t>(v)];
      });
    block.ops.erase(block.ops.begin() + static_cast<std::ptrdiff_t>(i));
    ++removed;
  }
  return removed;
}

}  // namespace

int fold_constants(ir::Function& fn) {
  return Folder(fn).run();
}

int eliminate_common_subexpressions(ir::Function& fn) {
  std::unordered_map<ValueId, ValueId> replaced;
  int changes = cse_block(fn, fn.body, {}, replaced);
  return changes;
}

int eliminate_dead_code(ir::Function& fn) {
  int total = 0;
  for (;;) {
    std::vector<int> uses(fn.value_types.size(), 0);
    count_uses(fn.body, uses);
    int removed = dce_block(fn.body, uses);
    total += removed;
    if (removed == 0) return total;
  }
}

void optimize(ir::Function& fn) {
  for (int round = 0; round < 8; ++round) {
    int changes = fold_constants(fn);
    changes += simplify_masks(fn);
    changes += eliminate_common_subexpressions(fn);
    changes += eliminate_dead_code(fn);
    if (changes == 0) break;
  }
  choose_layout(fn);
  ir::verify(fn);
}

}  // namespace flagstone::compiler::passes
