// Index arithmetic as expressions of the flat element index, for the GPU emitter: pointer and
// mask tiles made from aranges, constants and scalars are recomputed by whichever thread needs
// an element, so broadcasting them costs no shared memory and no barrier.
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
  return out;
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
  if (!t.is_tile() || (!t.pointer && is_floating(t.dtype))) return;
  std::vector<std::string> args;
  for (ValueId v : op.operands) {
    if (!fn_.type(v).is_tile()) {
      args.push_back(name(v));
      continue;
    }
    auto it = gen_.find(v);
    if (it == gen_.end()) return;
    args.push_back("(" + it->second + ")");
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
  if (e.size() <= kMaxExpression) gen_[r] = e;
}

}  // namespace flagstone::compiler
