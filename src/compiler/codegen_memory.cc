// Loads, stores and atomics for the source emitter: per-element accesses through pointer
// tiles, and on GPUs 16-byte vector accesses for contiguous runs with a per-element fallback.
#include <cstdlib>
#include <string>

#include "codegen_emitter.h"

namespace flagstone::compiler {

// FLAGSTONE_COMPILER_VEC_UNIFORM=1 turns the whole-tile vector branch on (an A/B switch until
// measured; it changes the generated source, so the cache keeps both).
bool uniform_vector_path() {
  static const bool on = [] {
    const char* env = std::getenv("FLAGSTONE_COMPILER_VEC_UNIFORM");
    return env && std::string(env) == "1";
  }();
  return on;
}

// A 16-bit float load on CUDA also keeps the loaded bits (array `<name>_b`), which tensor-core
// dots store to shared memory as they are; the compiler drops the array when nothing reads it.
bool Emitter::raw_bits(const Op& op) {
  const Type& pt = fn_.type(op.operands[0]);
  if (d_ != Dialect::kCuda || !pt.is_tile() ||
      (pt.dtype != DType::kF16 && pt.dtype != DType::kBF16))
    return false;
  ValueId r = op.results[0];
  if (!raw_.count(r)) {
    line("unsigned short " + name(r) + "_b[" + std::to_string(elems(pt)) + "];");
    raw_.insert(r);
  }
  return true;
}

bool Emitter::vector_memory(const Op& op) {
  const Type& pt = fn_.type(op.operands[0]);
  int64_t v = vec_width(pt);
  if (v != 4 || op.attrs.empty() || op.attrs[0] % v != 0) return false;
  DType d = pt.dtype;
  size_t bytes = storage_size(d) * 4;
  std::string vt;
  switch (d) {
    case DType::kF32:
      vt = "float4";
      break;
    case DType::kI32:
      vt = "int4";
      break;
    case DType::kF16:
    case DType::kBF16:
      vt = "ushort4";
      break;
    case DType::kI16:
      vt = "short4";
      break;
    case DType::kI8:
      vt = "char4";
      break;
    case DType::kU8:
    case DType::kBool:
      vt = "uchar4";
      break;
    default:
      return false;  // 8-byte types: 32-byte vectors do not exist
  }
  bool load = op.kind == OpKind::kLoad;
  size_t mask_at = load ? 1 : 2;
  bool masked = op.operands.size() > mask_at;
  // Index tiles are recomputed at the access rather than kept live in registers.
  auto at = [&](ValueId id, const std::string& i) {
    if (!fn_.type(id).is_tile()) return name(id);
    auto g = gen_.find(id);
    if (g != gen_.end()) return "(" + at_index(g->second, flat_of(fn_.type(id), i)) + ")";
    return name(id) + "[" + i + "]";
  };
  std::string base = base_of(op.operands[0]);
  ValueId pid = op.operands[0];
  std::string first = base + " + " + at(pid, "jv");
  if (load) declare(op.results[0]);
  bool raw = load && raw_bits(op);
  std::string rn = load ? name(op.results[0]) : "";
  // The layout analysis proves each group of 4 addresses consecutive (checking it again here
  // kept both paths live and cost registers); masks and alignment are run-time facts, checked
  // here, and any group that fails them takes the scalar path.
  std::string cond = "1";
  if (masked)
    for (int e = 0; e < 4; ++e)
      cond += " && " + at(op.operands[mask_at], "jv + " + std::to_string(e));
  // Aligned groups move as one vector through a vector pointer: vload4/vstore4 only promise
  // element alignment, and NVIDIA's OpenCL then splits them into scalar accesses.
  std::string u64 = d_ == Dialect::kCuda ? "unsigned long long" : "ulong";
  std::string gq = d_ == Dialect::kOpenCL ? "__global " : "";
  cond += " && ((" + u64 + ")(" + first + ") & " + std::to_string(bytes - 1) + ") == 0";
  const char* lanes[4] = {"x", "y", "z", "w"};
  auto vector_group = [&] {
    if (load) {
      line("const " + vt + " w = *(" + gq + "const " + vt + "*)(" + first + ");");
      for (int e = 0; e < 4; ++e) {
        std::string i = "[jv + " + std::to_string(e) + "]";
        if (raw) line(rn + "_b" + i + " = w." + lanes[e] + ";");
        line(rn + i + " = " + load_conv(d, std::string("w.") + lanes[e]) + ";");
      }
    } else {
      std::string c[4];
      for (int e = 0; e < 4; ++e)
        c[e] = store_conv(d, at(op.operands[1], "jv + " + std::to_string(e)));
      line(vt + " w;");
      for (int e = 0; e < 4; ++e) line(std::string("w.") + lanes[e] + " = " + c[e] + ";");
      line("*(" + gq + vt + "*)(" + first + ") = w;");
    }
  };
  auto scalar_group = [&] {
    for (int e = 0; e < 4; ++e) {
      std::string i = "jv + " + std::to_string(e);
      std::string elem = base + "[" + at(pid, i) + "]";
      if (load) {
        std::string x = load_conv(d, elem);
        std::string bits = elem;
        if (masked) {
          std::string other = op.operands.size() > 2 ? at(op.operands[2], i) : literal(d, 0, 0);
          x = "(" + at(op.operands[1], i) + " ? " + x + " : " + other + ")";
          bits = "(" + at(op.operands[1], i) + " ? " + elem + " : " + store_conv(d, other) + ")";
        }
        if (raw) line(rn + "_b[" + i + "] = " + bits + ";");
        line(rn + "[" + i + "] = " + x + ";");
      } else {
        std::string stmt = elem + " = " + store_conv(d, at(op.operands[1], i)) + ";";
        line(masked ? "if (" + at(op.operands[2], i) + ") " + stmt : stmt);
      }
    }
  };
  std::string groups = "for (int jv = 0; jv < " + std::to_string(elems(pt)) + "; jv += 4)";
  auto unroll = [&] {
    if (d_ == Dialect::kCuda) line("#pragma unroll");
  };
  // With more than one group, a thread whose groups all pass takes one branch to straight-line
  // vector accesses (the usual case: interior rows, aligned tensors), so the compiler issues
  // them back to back; the others check group by group.
  const bool uniform = uniform_vector_path() && elems(pt) > 4;
  std::string all;
  if (uniform) {
    all = "fs_vec" + std::to_string(vector_checks_++);
    line("bool " + all + " = true;");
    unroll();
    open(groups);
    line(all + " = " + all + " && (" + cond + ");");
    close();
    open("if (" + all + ")");
    unroll();
    open(groups);
    vector_group();
    close();
    close();
    open("else");
  }
  unroll();
  open(groups);
  open("if (" + cond + ")");
  vector_group();
  close();
  open("else");
  scalar_group();
  close();
  close();
  if (uniform) close();
  return true;
}

void Emitter::memory(const Op& op) {
  const Type& pt = fn_.type(op.operands[0]);
  bool tile = pt.is_tile();
  if (tile && op.kind == OpKind::kStore && mma_store(op)) return;
  if (tile && (op.kind == OpKind::kLoad || op.kind == OpKind::kStore) && vector_memory(op)) return;
  if (op.kind == OpKind::kAddPtr) {
    roots_[op.results[0]] = roots_.at(op.operands[0]);
    elementwise(op,
                "(" + ref(op.operands[0]) + " + (" + index_t() + ")" + ref(op.operands[1]) + ")",
                "(" + ref(op.operands[0]) + " + (" + index_t() + ")" + ref(op.operands[1]) + ")");
    return;
  }
  std::string base = base_of(op.operands[0]);
  DType d = pt.dtype;
  // Index tiles are recomputed at the access rather than kept live in registers.
  auto ref = [&](ValueId id) {
    auto g = gpu() && fn_.type(id).is_tile() ? gen_.find(id) : gen_.end();
    if (g != gen_.end()) return "(" + at_index(g->second, "f") + ")";
    return this->ref(id);
  };
  std::string ptr = ref(op.operands[0]);
  // The layout pass marks loads/stores whose pointer tile is one contiguous run; the cpu then
  // addresses base + first offset + j, which the compiler turns into vector loads.
  if (!gpu() && tile && !op.attrs.empty() && op.attrs[0] == pt.numel())
    ptr = name(op.operands[0]) + "[0] + j";
  std::string elem = base + "[" + ptr + "]";
  if (op.kind == OpKind::kLoad) {
    std::string e = load_conv(d, elem);
    std::string bits = elem;
    if (op.operands.size() > 1) {
      std::string other = op.operands.size() > 2 ? ref(op.operands[2]) : literal(d, 0, 0);
      e = "(" + ref(op.operands[1]) + " ? " + e + " : " + other + ")";
      bits = "(" + ref(op.operands[1]) + " ? " + elem + " : " + store_conv(d, other) + ")";
    }
    ValueId r = op.results[0];
    if (!tile) {
      declare(r, e);
      return;
    }
    declare(r);
    bool raw = raw_bits(op);
    begin_elems(pt);
    if (raw) line(name(r) + "_b[j] = " + bits + ";");
    line(name(r) + "[j] = " + e + ";");
    end_elems(pt);
    return;
  }
  std::string value = ref(op.operands[1]);
  std::string stmt;
  if (op.kind == OpKind::kStore) {
    stmt = elem + " = " + store_conv(d, value) + ";";
  } else {
    bool add = op.kind == OpKind::kAtomicAdd;
    std::string fn = add ? "fs_atomic_add" : "fs_atomic_max";
    if (d_ == Dialect::kOpenCL) fn += d == DType::kF32 ? "_f" : "_i";
    stmt = fn + "(&" + elem + ", " + value + ");";
  }
  if (op.operands.size() > 2) stmt = "if (" + ref(op.operands[2]) + ") " + stmt;
  if (!tile) {
    line(gpu() ? "if (fs_tid == 0) " + stmt : stmt);
    return;
  }
  begin_elems(pt);
  line(stmt);
  end_elems(pt);
}

}  // namespace flagstone::compiler
