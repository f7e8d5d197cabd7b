// Passes driven by value analyses: mask simplification from integer ranges, and the layout
// (vector width) choice from contiguity along the last dim.
#include <algorithm>
#include <limits>
#include <numeric>
#include <optional>
#include <unordered_map>

#include "flagstone/compiler/passes.h"

namespace flagstone::compiler::passes {

using ir::Op;
using ir::OpKind;
using ir::ValueId;

namespace {

// Wide enough that sums and products of two int64 ranges cannot wrap.
__extension__ typedef __int128 Wide;

struct Range {
  int64_t lo;
  int64_t hi;
};

constexpr int64_t kI32Max = std::numeric_limits<int32_t>::max();
constexpr int64_t kI32Min = std::numeric_limits<int32_t>::min();

// Integer ranges (every element of a tile lies in [lo, hi]). Values that could wrap are left
// unknown, so a proof never rests on overflowed arithmetic.
class RangeAnalysis {
 public:
  explicit RangeAnalysis(const ir::Function& fn) : fn_(fn) { block(fn.body); }

  std::optional<Range> get(ValueId v) const {
    auto it = ranges_.find(v);
    if (it == ranges_.end()) return std::nullopt;
    return it->second;
  }

 private:
  bool fits(DType d, Wide lo, Wide hi) const {
    int64_t min = d == DType::kI64 ? std::numeric_limits<int64_t>::min() : kI32Min;
    int64_t max = d == DType::kI64 ? std::numeric_limits<int64_t>::max() : kI32Max;
    if (d == DType::kI16) min = -32768, max = 32767;
    if (d == DType::kI8) min = -128, max = 127;
    if (d == DType::kU8) min = 0, max = 255;
    return lo >= min && hi <= max;
  }
  void set(ValueId v, Wide lo, Wide hi) {
    if (fits(fn_.type(v).dtype, lo, hi))
      ranges_[v] = Range{static_cast<int64_t>(lo), static_cast<int64_t>(hi)};
  }

  void block(const ir::Block& b) {
    for (const Op& op : b.ops) visit(op);
  }

  void visit(const Op& op) {
    if (op.kind == OpKind::kFor) {
      auto lo = get(op.operands[0]);
      auto hi = get(op.operands[1]);
      auto step = get(op.operands[2]);
      if (lo && hi && step && lo->lo == lo->hi && hi->lo == hi->hi && step->lo == step->hi &&
          step->lo > 0 && hi->lo > lo->lo) {
        int64_t last = lo->lo + (hi->lo - 1 - lo->lo) / step->lo * step->lo;
        set(op.body->args[0], lo->lo, last);
      }
      block(*op.body);
      return;
    }
    if (op.results.empty()) return;
    ValueId r = op.results[0];
    const ir::Type& t = fn_.type(r);
    if (t.pointer || !dtype_info(t.dtype).is_integer) return;
    auto a = op.operands.size() > 0 ? get(op.operands[0]) : std::nullopt;
    auto b = op.operands.size() > 1 ? get(op.operands[1]) : std::nullopt;
    using I = Wide;
    switch (op.kind) {
      case OpKind::kConstant:
        set(r, op.ivalue, op.ivalue);
        break;
      case OpKind::kArange:
        set(r, op.attrs[0], op.attrs[1] - 1);
        break;
      case OpKind::kProgramId:
        set(r, 0, kI32Max - 1);
        break;
      case OpKind::kNumPrograms:
        set(r, 1, kI32Max);
        break;
      case OpKind::kSplat:
      case OpKind::kBroadcast:
      case OpKind::kReshape:
      case OpKind::kExpandDims:
      case OpKind::kTrans:
        if (a) set(r, a->lo, a->hi);
        break;
      case OpKind::kCast:
        if (a && dtype_info(fn_.type(op.operands[0]).dtype).is_integer) set(r, a->lo, a->hi);
        break;
      case OpKind::kAdd:
        if (a && b) set(r, I(a->lo) + b->lo, I(a->hi) + b->hi);
        break;
      case OpKind::kSub:
        if (a && b) set(r, I(a->lo) - b->hi, I(a->hi) - b->lo);
        break;
      case OpKind::kMul:
        if (a && b) {
          I p[4] = {I(a->lo) * b->lo, I(a->lo) * b->hi, I(a->hi) * b->lo, I(a->hi) * b->hi};
          set(r, *std::min_element(p, p + 4), *std::max_element(p, p + 4));
        }
        break;
      case OpKind::kRem:
        if (a && b && a->lo >= 0 && b->lo > 0) set(r, 0, std::min(a->hi, b->hi - 1));
        break;
      case OpKind::kDiv:
        if (a && b && a->lo >= 0 && b->lo > 0) set(r, a->lo / b->hi, a->hi / b->lo);
        break;
      case OpKind::kMin:
        if (a && b) set(r, std::min(a->lo, b->lo), std::min(a->hi, b->hi));
        break;
      case OpKind::kMax:
        if (a && b) set(r, std::max(a->lo, b->lo), std::max(a->hi, b->hi));
        break;
      default:
        break;
    }
  }

  const ir::Function& fn_;
  std::unordered_map<ValueId, Range> ranges_;
};

// -1: unknown, 0: all false, 1: all true.
int decide(OpKind k, Range a, Range b) {
  switch (k) {
    case OpKind::kLt:
      return a.hi < b.lo ? 1 : a.lo >= b.hi ? 0 : -1;
    case OpKind::kLe:
      return a.hi <= b.lo ? 1 : a.lo > b.hi ? 0 : -1;
    case OpKind::kGt:
      return a.lo > b.hi ? 1 : a.hi <= b.lo ? 0 : -1;
    case OpKind::kGe:
      return a.lo >= b.hi ? 1 : a.hi < b.lo ? 0 : -1;
    case OpKind::kEq:
      if (a.lo == a.hi && b.lo == b.hi && a.lo == b.lo) return 1;
      return (a.hi < b.lo || b.hi < a.lo) ? 0 : -1;
    case OpKind::kNe:
      if (a.lo == a.hi && b.lo == b.hi && a.lo == b.lo) return 0;
      return (a.hi < b.lo || b.hi < a.lo) ? 1 : -1;
    default:
      return -1;
  }
}

int rewrite_compares(ir::Function& fn, ir::Block& block, const RangeAnalysis& ranges) {
  int changes = 0;
  for (Op& op : block.ops) {
    if (op.body) changes += rewrite_compares(fn, *op.body, ranges);
    if (ir::op_info(op.kind).op_class != ir::OpClass::kCompare) continue;
    auto a = ranges.get(op.operands[0]);
    auto b = ranges.get(op.operands[1]);
    if (!a || !b) continue;
    int verdict = decide(op.kind, *a, *b);
    if (verdict < 0) continue;
    op.kind = OpKind::kConstant;
    op.operands.clear();
    op.ivalue = verdict;
    ++changes;
  }
  return changes;
}

// Drops masks that are constant; folds loads and stores whose mask is all false.
int rewrite_masked(ir::Function& fn, ir::Block& block,
                   const std::unordered_map<ValueId, int64_t>& bool_consts,
                   std::vector<std::pair<ValueId, ValueId>>& forwards) {
  int changes = 0;
  for (size_t i = 0; i < block.ops.size(); ++i) {
    Op& op = block.ops[i];
    if (op.body) changes += rewrite_masked(fn, *op.body, bool_consts, forwards);
    bool is_load = op.kind == OpKind::kLoad;
    bool is_write =
        op.kind == OpKind::kStore || op.kind == OpKind::kAtomicAdd || op.kind == OpKind::kAtomicMax;
    size_t mask_index = is_load ? 1 : 2;
    if ((!is_load && !is_write) || op.operands.size() <= mask_index) continue;
    auto it = bool_consts.find(op.operands[mask_index]);
    if (it == bool_consts.end()) continue;
    if (it->second) {
      op.operands.resize(mask_index);
    } else if (is_write) {
      block.ops.erase(block.ops.begin() + static_cast<std::ptrdiff_t>(i));
      --i;
    } else if (op.operands.size() > 2) {
      forwards.emplace_back(op.results[0], op.operands[2]);
    } else {
      op.kind = OpKind::kConstant;
      op.operands.clear();
      op.attrs.clear();
      op.ivalue = 0;
      op.fvalue = 0;
    }
    ++changes;
  }
  return changes;
}

}  // namespace

int simplify_masks(ir::Function& fn) {
  RangeAnalysis ranges(fn);
  int changes = rewrite_compares(fn, fn.body, ranges);
  std::unordered_map<ValueId, int64_t> bool_consts;
  ir::walk(fn.body, [&](const Op& op) {
    if (op.kind == OpKind::kConstant && fn.type(op.results[0]).dtype == DType::kBool)
      bool_consts[op.results[0]] = op.ivalue;
  });
  std::vector<std::pair<ValueId, ValueId>> forwards;
  changes += rewrite_masked(fn, fn.body, bool_consts, forwards);
  for (auto [from, to] : forwards) replace_uses(fn.body, from, to);
  return changes;
}

namespace {

// Along the last dim: runs of consecutive integers (contiguity) and of equal values
// (constancy), as Triton's axis analysis tracks them.
struct Axis {
  int64_t contig = 1;
  int64_t constancy = 1;
};

// The run length of a scalar: every element of any tile.
constexpr int64_t kEverywhere = std::numeric_limits<int64_t>::max();

// Runs of lengths x and y (each starting at multiples of its length) hold together for the
// runs of their gcd.
int64_t meet(int64_t x, int64_t y) {
  return x == kEverywhere ? y : y == kEverywhere ? x : std::gcd(x, y);
}

bool cast_keeps_runs(DType from, DType to) {
  auto index_type = [](DType d) { return d == DType::kI32 || d == DType::kI64; };
  return index_type(from) && index_type(to);
}

}  // namespace

int choose_layout(ir::Function& fn) {
  std::unordered_map<ValueId, Axis> info;
  std::unordered_map<ValueId, int64_t> consts;
  auto get = [&](ValueId v) {
    auto it = info.find(v);
    if (it != info.end()) return it->second;
    const ir::Type& t = fn.type(v);
    // Scalars are the same value everywhere.
    return t.is_tile() ? Axis{} : Axis{1, kEverywhere};
  };
  int changes = 0;
  ir::walk_mut(fn.body, [&](Op& op) {
    if (op.results.size() == 1) {
      ValueId r = op.results[0];
      const ir::Type& t = fn.type(r);
      int64_t last = t.is_tile() ? t.shape.back() : 1;
      Axis a = op.operands.empty() ? Axis{} : get(op.operands[0]);
      Axis b = op.operands.size() > 1 ? get(op.operands[1]) : Axis{};
      Axis out;
      switch (op.kind) {
        case OpKind::kArange:
          out = {last, 1};
          break;
        case OpKind::kConstant:
          out = {1, last};
          if (!t.is_tile()) consts[r] = op.ivalue;
          break;
        case OpKind::kSplat:
          out = {1, last};
          break;
        case OpKind::kBroadcast: {
          const ir::Type& src = fn.type(op.operands[0]);
          out = src.shape.back() == 1 ? Axis{1, last} : a;
          break;
        }
        case OpKind::kExpandDims:
          out = op.attrs[0] == fn.type(op.operands[0]).rank() ? Axis{1, 1} : a;
          break;
        case OpKind::kReshape:
          out = fn.type(op.operands[0]).shape.back() == last ? a : Axis{};
          break;
        case OpKind::kAdd:
        case OpKind::kAddPtr:
          // Runs start at multiples of their length; two run lengths that are not multiples of
          // each other only share boundaries every gcd elements.
          out.contig = std::max(meet(a.contig, b.constancy), meet(a.constancy, b.contig));
          out.constancy = meet(a.constancy, b.constancy);
          break;
        case OpKind::kMul:
          out = {1, meet(a.constancy, b.constancy)};
          break;
        case OpKind::kCast:
          // Consecutive integers stay consecutive only through integer casts that cannot wrap
          // for an index (to i32 or i64); through floats or narrow types the run is not proven.
          out = {cast_keeps_runs(fn.type(op.operands[0]).dtype, t.dtype) ? a.contig : 1,
                 a.constancy};
          break;
        default:
          out = {1, 1};
      }
      out.contig = meet(out.contig, last);
      out.constancy = meet(out.constancy, last);
      info[r] = out;
    }
    if (op.kind == OpKind::kLoad || op.kind == OpKind::kStore) {
      const ir::Type& pt = fn.type(op.operands[0]);
      if (!pt.is_tile()) return;
      int64_t vec = get(op.operands[0]).contig;
      if (op.attrs.empty() || op.attrs[0] != vec) {
        op.attrs = {vec};
        ++changes;
      }
    }
  });
  return changes;
}

}  // namespace flagstone::compiler::passes
