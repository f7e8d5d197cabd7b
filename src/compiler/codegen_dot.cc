// Tile dot for the source emitter: tensor cores through mma.sync (m16n8k16, f16/bf16 inputs,
// f32 accumulation) on CUDA, shared-memory loops elsewhere, i-k-j loops on the cpu.
#include <cstdint>
#include <limits>

#include "codegen_emitter.h"
#include "flagstone/base/error.h"

namespace flagstone::compiler {

namespace {

constexpr int64_t kPad = 8;  // halves of padding per shared row: conflict-free fragment loads

}  // namespace

// A dot qualifies for tensor cores when its inputs are f16/bf16 and its shapes split into
// m16n8k16 blocks over the program's warps; the split that loads the fewest fragments per mma
// wins.
void Emitter::plan_mma(const ir::Block& b) {
  for (const Op& op : b.ops) {
    if (op.body) plan_mma(*op.body);
    if (op.kind != OpKind::kDot || d_ != Dialect::kCuda || threads_ % 32 != 0) continue;
    const Type& a = fn_.type(op.operands[0]);
    const Type& bt = fn_.type(op.operands[1]);
    if (a.dtype != bt.dtype || (a.dtype != DType::kF16 && a.dtype != DType::kBF16)) continue;
    int64_t m = a.shape[0], k = a.shape[1], n = bt.shape[1];
    if (m % 16 != 0 || n % 8 != 0 || k % 16 != 0) continue;
    std::vector<int64_t> shape = {m, n};
    if (mma_.count(shape)) continue;
    int64_t warps = threads_ / 32;
    if (wgmma_shape(m, n, k)) {  // sm_90: one warp per 16-row strip, as wgmma lays out its rows
      mma_[shape] = MmaLayout{m, n, warps, 1, 16, n};
      continue;
    }
    double best = std::numeric_limits<double>::infinity();
    MmaLayout chosen;
    for (int64_t wm = 1; wm <= warps; ++wm) {
      if (warps % wm != 0) continue;
      int64_t wn = warps / wm;
      if (m % (16 * wm) != 0 || n % (8 * wn) != 0) continue;
      double mb = static_cast<double>(m / wm / 16), nb = static_cast<double>(n / wn / 8);
      double cost = (mb * 4 + nb * 2) / (mb * nb);
      if (cost < best) best = cost, chosen = MmaLayout{m, n, wm, wn, m / wm, n / wn};
    }
    if (chosen.m) mma_[shape] = chosen;
  }
}

const Emitter::MmaLayout* Emitter::mma_layout(const Type& t) const {
  if (mma_.empty() || t.rank() != 2) return nullptr;
  auto it = mma_.find(t.shape);
  return it == mma_.end() ? nullptr : &it->second;
}

// Slot j of a thread holds accumulator element j % 4 of the warp's m16n8 block j / 4 (blocks
// row-major over the warp's part): rows g and g + 8, columns 2q and 2q + 1 of the block, with
// g = lane / 4 and q = lane % 4, as mma.sync lays out C and D.
std::string Emitter::mma_flat_index(const MmaLayout& l, const std::string& j) const {
  std::string nb = std::to_string(l.tn / 8);
  std::string row = "(fs_warp / " + std::to_string(l.wn) + ") * " + std::to_string(l.tm) + " + ((" +
                    j + " >> 2) / " + nb + ") * 16 + (fs_lane >> 2) + ((" + j + " >> 1) & 1) * 8";
  std::string col = "(fs_warp % " + std::to_string(l.wn) + ") * " + std::to_string(l.tn) + " + ((" +
                    j + " >> 2) % " + nb + ") * 8 + (fs_lane & 3) * 2 + (" + j + " & 1)";
  return "(" + row + ") * " + std::to_string(l.n) + " + " + col;
}

bool Emitter::dot_uses_mma(const Op& op) const {
  const Type& a = fn_.type(op.operands[0]);
  const Type& b = fn_.type(op.operands[1]);
  return a.dtype == b.dtype && (a.dtype == DType::kF16 || a.dtype == DType::kBF16) &&
         a.shape[1] % 16 == 0 && mma_layout(fn_.type(op.results[0])) != nullptr;
}

void Emitter::dot_mma(const Op& op, const MmaLayout& l) {
  const Type& a = fn_.type(op.operands[0]);
  const Type& b = fn_.type(op.operands[1]);
  const Type& rt = fn_.type(op.results[0]);
  int64_t k = a.shape[1];
  std::string ks = std::to_string(k), ns = std::to_string(l.n), kp = std::to_string(k + kPad);
  std::string conv = a.dtype == DType::kF16 ? "fs_f2h" : "fs_f2bf";
  std::string kind = a.dtype == DType::kF16 ? "f16" : "bf16";
  // A and B row-major as 16-bit values in shared memory, rows padded so that the eight
  // 16-byte rows an ldmatrix reads fall in distinct banks; B fragments come transposed.
  std::string np = std::to_string(l.n + kPad);
  int64_t cursor = 0;
  barrier();
  std::string sa = scratch_array("unsigned short", l.m * (k + kPad), 2, &cursor);
  std::string sb = scratch_array("unsigned short", k * (l.n + kPad), 2, &cursor);
  // Operands loaded straight from memory give their bits; computed ones are rounded (exactly:
  // they already hold f16/bf16 values).
  auto bits = [&](ValueId v) {
    return raw_.count(v) ? name(v) + "_b[j]" : conv + "(" + name(v) + "[j])";
  };
  begin_elems(a);
  line(sa + "[(f / " + ks + ") * " + kp + " + f % " + ks + "] = " + bits(op.operands[0]) + ";");
  end_elems(a);
  begin_elems(b);
  line(sb + "[(f / " + ns + ") * " + np + " + f % " + ns + "] = " + bits(op.operands[1]) + ";");
  end_elems(b);
  barrier();
  ValueId res = op.results[0];
  declare(res);
  std::string out = name(res);
  begin_elems(rt);
  line(out + "[j] = " + (op.operands.size() > 2 ? name(op.operands[2]) + "[j]" : "0.0f") + ";");
  end_elems(rt);
  int64_t mb = l.tm / 16, nb = l.tn / 8;
  open("");
  line("const int wm = fs_warp / " + std::to_string(l.wn) + ", wn = fs_warp % " +
       std::to_string(l.wn) + ";");
  line("const unsigned sa_addr = (unsigned)__cvta_generic_to_shared(" + sa + ");");
  line("const unsigned sb_addr = (unsigned)__cvta_generic_to_shared(" + sb + ");");
  line("#pragma unroll");
  open("for (int kk = 0; kk < " + ks + "; kk += 16)");
  // B fragments of the warp's column blocks, two blocks per ldmatrix.x4: lanes 0-15 address
  // rows kk..kk+15 of block bj, lanes 16-31 those of block bj + 1.
  line("unsigned bf[" + std::to_string(nb * 2 + 2) + "];");
  line("#pragma unroll");
  open("for (int bj = 0; bj < " + std::to_string(nb) + "; bj += 2)");
  line("const unsigned addr = sb_addr + 2 * ((kk + (fs_lane & 15)) * " + np + " + wn * " +
       std::to_string(l.tn) + " + bj * 8 + (fs_lane >> 4) * 8);");
  open("if (bj + 1 < " + std::to_string(nb) + ")");
  line(
      "asm volatile(\"ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\" : "
      "\"=r\"(bf[bj * 2]), \"=r\"(bf[bj * 2 + 1]), \"=r\"(bf[bj * 2 + 2]), \"=r\"(bf[bj * 2 + 3]) "
      ": \"r\"(addr) : \"memory\");");
  close();
  open("else");
  line(
      "asm volatile(\"ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\" : "
      "\"=r\"(bf[bj * 2]), \"=r\"(bf[bj * 2 + 1]) : \"r\"(addr) : \"memory\");");
  close();
  close();
  line("#pragma unroll");
  open("for (int bi = 0; bi < " + std::to_string(mb) + "; ++bi)");
  // A fragment: lanes 0-15 address rows 0-15 at column kk, lanes 16-31 the same rows at kk+8.
  line("unsigned a0, a1, a2, a3;");
  line(
      "asm volatile(\"ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\" : "
      "\"=r\"(a0), \"=r\"(a1), \"=r\"(a2), \"=r\"(a3) : \"r\"(sa_addr + 2 * ((wm * " +
      std::to_string(l.tm) + " + bi * 16 + (fs_lane & 15)) * " + kp +
      " + kk + (fs_lane >> 4) * 8)) : \"memory\");");
  line("#pragma unroll");
  open("for (int bj = 0; bj < " + std::to_string(nb) + "; ++bj)");
  line("const int c = (bi * " + std::to_string(nb) + " + bj) * 4;");
  line("asm(\"mma.sync.aligned.m16n8k16.row.col.f32." + kind + "." + kind +
       ".f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\" : \"+f\"(" + out +
       "[c]), \"+f\"(" + out + "[c + 1]), \"+f\"(" + out + "[c + 2]), \"+f\"(" + out +
       "[c + 3]) : \"r\"(a0), \"r\"(a1), \"r\"(a2), \"r\"(a3), \"r\"(bf[bj * 2]), "
       "\"r\"(bf[bj * 2 + 1]));");
  close();
  close();
  close();
  close();
}

void Emitter::dot(const Op& op) {
  if (dot_uses_mma(op)) return dot_mma(op, *mma_layout(fn_.type(op.results[0])));
  const Type& a = fn_.type(op.operands[0]);
  const Type& b = fn_.type(op.operands[1]);
  const Type& rt = fn_.type(op.results[0]);
  std::string m = std::to_string(a.shape[0]);
  std::string k = std::to_string(a.shape[1]);
  std::string n = std::to_string(b.shape[1]);
  ValueId res = op.results[0];
  int64_t numel = a.shape[0] * b.shape[1];
  int64_t cursor = 0;
  barrier();
  std::string sa = materialize(op.operands[0], &cursor);
  std::string sb = materialize(op.operands[1], &cursor);
  barrier();
  declare(res);
  std::string out = name(res);
  std::string init = op.operands.size() > 2 ? name(op.operands[2]) + "[j]" : "0.0f";
  if (!gpu()) {
    // i-k-j order: the innermost loop runs along contiguous rows of b and of the result.
    open("for (int j = 0; j < " + std::to_string(numel) + "; ++j)");
    line(out + "[j] = " + init + ";");
    close();
    open("for (int i = 0; i < " + m + "; ++i)");
    open("for (int kk = 0; kk < " + k + "; ++kk)");
    line("const float av = " + sa + "[i * " + k + " + kk];");
    open("for (int jj = 0; jj < " + n + "; ++jj)");
    line(out + "[i * " + n + " + jj] += av * " + sb + "[kk * " + n + " + jj];");
    close();
    close();
    close();
    return;
  }
  begin_elems(rt);
  line("const int i = f / " + n + ";");
  line("const int jj = f % " + n + ";");
  line("float acc = " + init + ";");
  open("for (int kk = 0; kk < " + k + "; ++kk)");
  line("acc += " + sa + "[i * " + k + " + kk] * " + sb + "[kk * " + n + " + jj];");
  close();
  line(out + "[j] = acc;");
  end_elems(rt);
}

}  // namespace flagstone::compiler
