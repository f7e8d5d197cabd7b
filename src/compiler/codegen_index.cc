// Index arithmetic as expressions of the flat element index, for the GPU emitter: pointer and
// mask tiles made from aranges, constants and scalars are recomputed by whichever thread needs
// an element, so broadcasting them costs no shared memory and no barrier.
#include <cctype>

#include "codegen_emitter.h"

namespace flagstone::compiler {

namespace {

constexpr size_t kMaxExpression = 3000;  // longer ones are cheaper to keep in registers

}  // namespace

std::string Emitter::at_index(const std::string& gen, const std::string& index) const {
  std::string out;
  for (char c : gen) {
    if (c == '@')
      out += "(" + index + ")";
    else
      out += c;
  }
  if (subst_.empty() || loops_.empty()) return out;
  // Read the loop variable as the next iteration's: replace the whole identifier only.
  std::string iv = "v" + std::to_string(loops_.back().iv);
  std::string res;
  for (size_t i = 0; i < out.size();) {
    bool starts =
        out.compare(i, iv.size(), iv) == 0 &&
        (i == 0 || !(std::isalnum(static_cast<unsigned char>(out[i - 1])) || out[i - 1] == '_')) &&
        (i + iv.size() == out.size() ||
         !(std::isalnum(static_cast<unsigned char>(out[i + iv.size()])) ||
           out[i + iv.size()] == '_'));
    if (starts) {
      res += subst_;
      i += iv.size();
    } else {
      res += out[i++];
    }
  }
  return res;
}

bool Emitter::prefetch(const Op& op) {
  if (d_ != Dialect::kCuda || loops_.empty()) return false;
  const Type& pt = fn_.type(op.operands[0]);
  if (!pt.is_tile()) return false;
  const LoopInfo& loop = loops_.back();
  for (ValueId v : op.operands) {
    auto g = gen_.find(v);
    if (g == gen_.end()) return false;
    for (ValueId dep : gen_deps_[v])
      if (loop.defs.count(dep)) return false;
  }
  ValueId r = op.results[0];
  const Type& rt = fn_.type(r);
  std::string buf = "pf" + std::to_string(r);
  std::string e = std::to_string(elems(rt));
  bool raw = d_ == Dialect::kCuda && (pt.dtype == DType::kF16 || pt.dtype == DType::kBF16);
  std::string indent(static_cast<size_t>(indent_ - 1) * 2, ' ');
  loops_.back().decls += indent + vtype(rt) + " " + buf + "[" + e + "];\n";
  if (raw) loops_.back().decls += indent + "unsigned short " + buf + "_b[" + e + "];\n";
  auto load_into_buffer = [&]() {
    auto named = names_.find(r);
    std::string saved = named == names_.end() ? "" : named->second;
    redirect_ = buf;
    if (raw) raw_.insert(r);  // the buffer's bit array is declared above
    memory(op);
    redirect_.clear();
    raw_.erase(r);
    if (!saved.empty()) names_[r] = saved;
  };
  std::string iv = "v" + std::to_string(loop.iv);
  open("if (" + iv + " == " + loop.lo + ")");
  load_into_buffer();
  close();
  declare(r);
  if (raw) {
    line("unsigned short " + name(r) + "_b[" + e + "];");
    raw_.insert(r);
  }
  begin_elems(rt);
  line(name(r) + "[j] = " + buf + "[j];");
  if (raw) line(name(r) + "_b[j] = " + buf + "_b[j];");
  end_elems(rt);
  open("if (" + iv + " + " + loop.step + " < " + loop.hi + ")");
  subst_ = "(" + iv + " + " + loop.step + ")";
  load_into_buffer();
  subst_.clear();
  close();
  if (raw) raw_.insert(r);
  return true;
}

std::string Emitter::move_index(const Op& op, const std::string& f) const {
  const Type& src = fn_.type(op.operands[0]);
  const Type& dst = fn_.type(op.results[0]);
  if (op.kind == OpKind::kTrans) {
    // dst[n][m] = src[m][n]; src is [M, N], dst flat f = n * M + m.
    std::string m = std::to_string(src.shape[0]);
    std::string n = std::to_string(src.shape[1]);
    return "(" + f + " % " + m + ") * " + n + " + " + f + " / " + m;
  }
  int64_t dst_stride = 1;
  int64_t src_stride = 1;
  std::string index = "0";
  for (int i = dst.rank() - 1; i >= 0; --i) {
    if (src.shape[i] != 1)
      index += " + ((" + f + " / " + std::to_string(dst_stride) + ") % " +
               std::to_string(dst.shape[i]) + ") * " + std::to_string(src_stride);
    dst_stride *= dst.shape[i];
    src_stride *= src.shape[i];
  }
  return index;
}

void Emitter::track_index(const Op& op) {
  if (!gpu() || op.results.size() != 1) return;
  ValueId r = op.results[0];
  const Type& t = fn_.type(r);
  if (!t.is_tile()) return;
  // Float tiles only as constants and splats (fill values): float math is not recomputed.
  bool cheap = op.kind == OpKind::kConstant || op.kind == OpKind::kSplat;
  if (!t.pointer && is_floating(t.dtype) && !cheap) return;
  std::vector<std::string> args;
  std::unordered_set<ValueId> deps;
  for (ValueId v : op.operands) {
    if (!fn_.type(v).is_tile()) {
      args.push_back(name(v));
      deps.insert(v);
      continue;
    }
    auto it = gen_.find(v);
    if (it == gen_.end()) return;
    args.push_back("(" + it->second + ")");
    const auto& d = gen_deps_[v];
    deps.insert(d.begin(), d.end());
  }
  std::string e;
  switch (op.kind) {
    case OpKind::kArange:
      e = "(" + ct(t.dtype) + ")(" + std::to_string(op.attrs[0]) + " + @)";
      break;
    case OpKind::kConstant:
      e = literal(t.dtype, op.fvalue, op.ivalue);
      break;
    case OpKind::kSplat:
    case OpKind::kExpandDims:
    case OpKind::kReshape:
      e = args[0];
      break;
    case OpKind::kBroadcast:
    case OpKind::kTrans:
      e = at_index(args[0], move_index(op, "@"));
      break;
    case OpKind::kAddPtr:
      e = "(" + args[0] + " + (" + index_t() + ")" + args[1] + ")";
      break;
    case OpKind::kProgramId:
    case OpKind::kNumPrograms:
    case OpKind::kLoad:
    case OpKind::kStore:
    case OpKind::kAtomicAdd:
    case OpKind::kAtomicMax:
    case OpKind::kReduceSum:
    case OpKind::kReduceMax:
    case OpKind::kReduceMin:
    case OpKind::kArgMax:
    case OpKind::kArgMin:
    case OpKind::kDot:
    case OpKind::kFor:
    case OpKind::kYield:
      return;
    default:
      e = expr_of(op, args);
      if (!t.pointer) e = wrap(t.dtype, e);
      break;
  }
  if (e.size() > kMaxExpression) return;
  gen_[r] = e;
  gen_deps_[r] = std::move(deps);
}

}  // namespace flagstone::compiler
