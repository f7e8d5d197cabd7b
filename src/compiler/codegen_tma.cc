// Tensor memory accelerator (TMA) copies for the sm_90 GEMM pipeline: one thread moves a whole
// operand tile global -> shared per K step with cp.async.bulk.tensor, in the 128-byte swizzle
// wgmma reads, completing on the stage's mbarrier.
//
// The tensor map (made by the launch from the pointer and row-stride parameters, see
// TensorMapRecipe) describes the operand as rows of `stride` elements; a tile goes by TMA when
// it lies wholly inside its mask and inside one row span, and by the cp.async copies otherwise
// (edges, K tails, views the map cannot describe).
#include <string>

#include "codegen_emitter.h"

namespace flagstone::compiler {

bool Emitter::emit_tma_operand(const std::string& x, const GemmOperand& o) {
  if (o.cols % 64 != 0 || o.rows > 256 || o.rows % 8 != 0) return false;  // (c1 == 1: _ok)
  // The row stride must be an integer parameter, so that the launch can read it.
  int stride_param = -1;
  for (size_t i = 0; i < fn_.params.size(); ++i) {
    const Type& t = fn_.type(fn_.params[i].value);
    if (t.pointer || t.is_tile() || is_floating(t.dtype)) continue;
    if (o.ptr.coef[0] == "(long long)" + name(fn_.params[i].value))
      stride_param = static_cast<int>(i);
  }
  if (stride_param < 0) return false;
  std::string map = "fs_tmap" + std::to_string(maps_.size());
  maps_.push_back({o.ptr.root, stride_param, o.rows});
  const std::string rows = std::to_string(o.rows), cols = std::to_string(o.cols);
  // Launch-uniform: 16-byte chunks, steps forward, and a map that was made (not all zeros).
  line("bool " + x + "_tma_ok = " + x + "_ok && " + x + "_c0 > 0 && " + x + "_d >= 0 && " + x +
       "_off(fs_lo) >= 0;");
  open("");
  line("unsigned long long any = 0;");
  line("for (int i = 0; i < 16; ++i) any |= " + map + ".v[i];");
  line(x + "_tma_ok = " + x + "_tma_ok && any != 0;");
  close();
  // Step `it` starts at element (row0 + it * drow, col0 + it * dcol) of the map.
  line("const long long " + x + "_row0 = " + x + "_tma_ok ? " + x + "_off(fs_lo) / " + x +
       "_c0 : 0, " + x + "_col0 = " + x + "_tma_ok ? " + x + "_off(fs_lo) % " + x + "_c0 : 0;");
  line("const long long " + x + "_drow = " + x + "_tma_ok ? " + x + "_d / " + x + "_c0 : 0, " + x +
       "_dcol = " + x + "_tma_ok ? " + x + "_d % " + x + "_c0 : 0;");
  open("auto " + x + "_tma_fits = [&](int fs_it) -> bool");
  line("const long long fs_k = fs_lo + (long long)fs_it * fs_step;");
  line("const long long col = " + x + "_col0 + fs_it * " + x + "_dcol;");
  line("const long long row = " + x + "_row0 + fs_it * " + x + "_drow;");
  line("return " + x + "_tma_ok && " + x + "_on(fs_k) && " + x + "_l0(fs_k) >= " + rows + " && " +
       x + "_l1(fs_k) >= " + cols + " && col + " + cols + " <= " + x + "_c0 && row + " + rows +
       " <= 0x7fffffffLL;");
  close();
  line(";");
  open("auto " + x + "_tma = [&](int fs_stage, int fs_it, unsigned fs_bar)");
  line("const int col = (int)(" + x + "_col0 + fs_it * " + x + "_dcol);");
  line("const int row = (int)(" + x + "_row0 + fs_it * " + x + "_drow);");
  line("const unsigned dst = fs_smem + " + std::to_string(o.offset) + "u + (unsigned)fs_stage * " +
       std::to_string(o.stage_bytes) + "u;");
  for (int64_t blk = 0; blk < o.cols / 64; ++blk)
    line(
        "asm "
        "volatile(\"cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes "
        "[%0], [%1, {%2, %3}], [%4];\" :: \"r\"(dst + " +
        std::to_string(blk * o.rows * 128) + "u), \"l\"((unsigned long long)&" + map +
        "), \"r\"(col + " + std::to_string(blk * 64) +
        "), \"r\"(row), \"r\"(fs_bar) : \"memory\");");
  close();
  line(";");
  return true;
}

}  // namespace flagstone::compiler
