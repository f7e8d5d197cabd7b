// The CUDA GEMM pipeline: a K loop whose body loads an A and a B tile and feeds them to a tensor-
// core dot with a loop-carried accumulator is lowered as Triton lowers it on Ampere/Hopper.
//
// The loads' pointers and masks are analysed symbolically (affine in the tile's row and column
// index, masks as per-axis upper bounds), so instead of per-element index arithmetic each thread
// copies 16-byte chunks global -> shared with cp.async into a num_stages-deep ring buffer
// (partial chunks at edges are zero-filled by the copy itself), the shared layout is XOR-
// swizzled so that ldmatrix is bank-conflict free, and each warp runs mma.sync on its sub-tile
// from ldmatrix fragments with the accumulator in registers. A per-iteration uniform check falls
// back to element loads into the same layout when a view is not contiguous or not aligned.
#include <algorithm>
#include <cstdlib>

#include "codegen_emitter.h"
#include "flagstone/base/error.h"

namespace flagstone::compiler {

bool Emitter::gemm_loop(const Op& op) {
  if (d_ != Dialect::kCuda || threads_ % 32 != 0 || op.operands.size() != 4) return false;
  const ir::Block& body = *op.body;
  if (body.ops.empty() || body.ops.back().kind != OpKind::kYield) return false;
  const Op* dot = def_of(body.ops.back().operands[0]);
  ValueId acc = body.args[1];
  if (!dot || dot->kind != OpKind::kDot || dot->operands.size() != 3 || dot->operands[2] != acc)
    return false;
  if (!dot_uses_mma(*dot)) return false;
  const MmaLayout& l = *mma_layout(fn_.type(op.results[0]));
  const Op* loads[2] = {def_of(dot->operands[0]), def_of(dot->operands[1])};
  // The body may hold only the two loads, the dot and pure index arithmetic; the loaded tiles
  // and the accumulator feed nothing but the dot.
  int load_count = 0;
  bool clean = true;
  std::unordered_set<ValueId> defs;
  ir::walk(body, [&](const Op& o) {
    defs.insert(o.results.begin(), o.results.end());
    switch (o.kind) {
      case OpKind::kLoad:
        ++load_count;
        break;
      case OpKind::kStore:
      case OpKind::kAtomicAdd:
      case OpKind::kAtomicMax:
      case OpKind::kFor:
      case OpKind::kReduceSum:
      case OpKind::kReduceMax:
      case OpKind::kReduceMin:
      case OpKind::kArgMax:
      case OpKind::kArgMin:
        clean = false;
        break;
      case OpKind::kDot:
        clean &= &o == dot;
        break;
      default:
        break;
    }
    for (size_t i = 0; i < o.operands.size(); ++i) {
      ValueId u = o.operands[i];
      bool by_dot = &o == dot || o.kind == OpKind::kYield;
      if ((u == acc || u == dot->operands[0] || u == dot->operands[1]) && !by_dot) clean = false;
    }
  });
  if (!clean || load_count != 2) return false;
  for (const Op* ld : loads)
    if (!ld || ld->kind != OpKind::kLoad || !defs.count(ld->results[0])) return false;
  if (dot->operands[0] == dot->operands[1]) return false;
  GemmScope scope{body.args[0], &defs};
  GemmOperand ops[2];
  for (int i = 0; i < 2; ++i) {
    const Op& ld = *loads[i];
    const Type& tt = fn_.type(ld.results[0]);
    ops[i].rows = tt.shape[0];
    ops[i].cols = tt.shape[1];
    ops[i].ptr = affine(ld.operands[0], scope);
    // The pipeline advances each pointer by a constant per iteration: offsets must be linear in
    // the loop variable, strides independent of it.
    const Affine& pt = ops[i].ptr;
    if (!pt.ok || pt.root < 0 || pt.coef.size() != 2 || pt.iv_degree > 1 || pt.iv_in_coef)
      return false;
    if (ld.operands.size() > 1) {
      ops[i].mask = bounds(ld.operands[1], scope);
      if (!ops[i].mask.ok || ops[i].mask.lim.size() != 2) return false;
    } else {
      ops[i].mask.ok = true;
      ops[i].mask.lim.assign(2, "");
    }
    if (ld.operands.size() > 2) {
      const Op* other = def_of(ld.operands[2]);
      if (!other || other->kind != OpKind::kConstant || other->fvalue != 0.0 || other->ivalue != 0)
        return false;
    }
    if (ops[i].cols % 8 != 0) return false;
  }
  emit_gemm_loop(op, l, ops[0], ops[1]);
  return true;
}

// Chunk `ch` (16 bytes) of row `r` in a swizzled shared tile whose rows hold `per_row` chunks:
// the eight rows one ldmatrix reads at one chunk column land in eight distinct 16-byte bank
// groups.
static std::string swizzled(int64_t per_row, const std::string& r, const std::string& ch) {
  // XOR within aligned groups of a power of two chunks, so no chunk leaves its row.
  int64_t group = 1;
  while (group < 8 && per_row % (group * 2) == 0) group *= 2;
  int64_t rows_per_line = std::max<int64_t>(1, 8 / per_row);
  if (group <= 1) return "(" + r + ") * " + std::to_string(per_row) + " + (" + ch + ")";
  return "(" + r + ") * " + std::to_string(per_row) + " + ((" + ch + ") ^ (((" + r + ") / " +
         std::to_string(rows_per_line) + ") & " + std::to_string(group - 1) + "))";
}

std::string Emitter::tile_chunk(int64_t rows, int64_t per_row, const std::string& r,
                                const std::string& ch) {
  if (rows == 0) return swizzled(per_row, r, ch);
  // wgmma's 128-byte swizzle: the tile as per_row / 8 column blocks of [rows][64 halves], chunk
  // c of row r at c ^ (r % 8) within its 128-byte row (rows of a 1024-byte aligned block).
  return "((((" + ch + ") >> 3) * " + std::to_string(rows) + " + (" + r + ")) * 8 + (((" + ch +
         ") & 7) ^ ((" + r + ") & 7)))";
}

// One operand's loaders: `<x>_fast(stage, it)` issues 16-byte cp.async copies (the caller has
// checked `<x>_ok`: contiguous rows, 16-byte aligned at every iteration), `<x>_slow(stage, it)`
// loads elements with any strides. Both fill the same swizzled layout, zeros where masked.
void Emitter::emit_gemm_operand(const std::string& x, const GemmOperand& o, bool wgmma) {
  const int64_t layout_rows = wgmma ? o.rows : 0;
  std::string big = "0x3fffffffffffffffLL";
  std::string T = std::to_string(threads_);
  int64_t per_row = o.cols / 8;
  int64_t chunks = o.rows * per_row;
  auto lambda = [&](const std::string& fn, const std::string& type, const std::string& e) {
    line("auto " + x + "_" + fn + " = [&](long long fs_k) -> " + type + " { (void)fs_k; return " +
         e + "; };");
  };
  lambda("off", "long long", o.ptr.base);
  lambda("l0", "long long", o.mask.lim[0].empty() ? big : o.mask.lim[0]);
  lambda("l1", "long long", o.mask.lim[1].empty() ? big : o.mask.lim[1]);
  lambda("on", "bool", o.mask.cond.empty() ? "true" : o.mask.cond);
  line("const long long " + x + "_c0 = " + o.ptr.coef[0] + ", " + x + "_c1 = " + o.ptr.coef[1] +
       ";");
  line("const unsigned short* const " + x + "_g = (const unsigned short*)b" +
       std::to_string(o.ptr.root) + " + " + x + "_off(fs_lo);");
  line("const long long " + x + "_d = " + x + "_off(fs_lo + fs_step) - " + x + "_off(fs_lo);");
  line("const bool " + x + "_ok = " + x + "_c1 == 1 && (" + x + "_c0 & 7) == 0 && (" + x +
       "_d & 7) == 0 && (((unsigned long long)" + x + "_g) & 15) == 0;");
  std::string stage = std::to_string(o.offset) + " + fs_stage * " + std::to_string(o.stage_bytes);
  open("auto " + x + "_fast = [&](int fs_stage, int fs_it)");
  line("const long long fs_k = fs_lo + (long long)fs_it * fs_step;");
  line("const long long l0 = " + x + "_l0(fs_k), l1 = " + x + "_l1(fs_k);");
  line("const bool on = " + x + "_on(fs_k);");
  line("const unsigned short* g = " + x + "_g + fs_it * " + x + "_d;");
  line("const unsigned sbase = fs_smem + " + stage + ";");
  // Tiles wholly inside the bounds (all but the edges and the K tail) copy without masks.
  auto copies = [&](bool masked) {
    line("#pragma unroll");
    open("for (int q = 0; q < " + std::to_string((chunks + threads_ - 1) / threads_) + "; ++q)");
    line("const int ch = fs_tid + q * " + T + ";");
    if (chunks % threads_ != 0) line("if (ch >= " + std::to_string(chunks) + ") break;");
    line("const int r = ch / " + std::to_string(per_row) + ", c = (ch % " +
         std::to_string(per_row) + ") * 8;");
    line("const unsigned dst = sbase + 16u * (unsigned)(" +
         tile_chunk(layout_rows, per_row, "r", "ch % " + std::to_string(per_row)) + ");");
    if (masked) {
      line("const long long rem = on && r < l0 ? l1 - c : 0;");
      line("const int bytes = rem >= 8 ? 16 : rem > 0 ? (int)rem * 2 : 0;");
      line("const unsigned short* src = bytes ? g + r * " + x + "_c0 + c : g;");
      line(
          "asm volatile(\"cp.async.cg.shared.global.L2::128B [%0], [%1], 16, %2;\" :: \"r\"(dst), "
          "\"l\"(src), \"r\"(bytes) : \"memory\");");
    } else {
      line("const unsigned short* src = g + r * " + x + "_c0 + c;");
      line(
          "asm volatile(\"cp.async.cg.shared.global.L2::128B [%0], [%1], 16;\" :: \"r\"(dst), "
          "\"l\"(src) : \"memory\");");
    }
    close();
  };
  open("if (on && l0 >= " + std::to_string(o.rows) + " && l1 >= " + std::to_string(o.cols) + ")");
  copies(false);
  close();
  open("else");
  copies(true);
  close();
  close();
  line(";");
  open("auto " + x + "_slow = [&](int fs_stage, int fs_it)");
  line("const long long fs_k = fs_lo + (long long)fs_it * fs_step;");
  line("const long long l0 = " + x + "_l0(fs_k), l1 = " + x + "_l1(fs_k);");
  line("const bool on = " + x + "_on(fs_k);");
  line("const unsigned short* g = (const unsigned short*)b" + std::to_string(o.ptr.root) + " + " +
       x + "_off(fs_k);");
  line("unsigned short* s = (unsigned short*)(fs_tiles + " + stage + ");");
  open("for (int e = fs_tid; e < " + std::to_string(o.rows * o.cols) + "; e += " + T + ")");
  line("const int r = e / " + std::to_string(o.cols) + ", c = e % " + std::to_string(o.cols) + ";");
  line("s[8 * (" + tile_chunk(layout_rows, per_row, "r", "c / 8") +
       ") + (c & 7)] = on && r < l0 && c < l1 ? g[r * " + x + "_c0 + c * " + x +
       "_c1] : (unsigned short)0;");
  close();
  close();
  line(";");
}

// Fragments of one 16-wide K step at `kk` of the stage at shared addresses sa/sb into
// af[mblocks][4] and bf[nblocks + 1][2] (array expressions given by the caller).
void Emitter::emit_gemm_fragments(const MmaLayout& l, const GemmShape& g, const std::string& af,
                                  const std::string& bf, const std::string& kk) {
  int64_t mblocks = l.tm / 16, nblocks = l.tn / 8;
  // A fragments: lanes 0-15 address rows 0-15 of the 16-row block at chunk kk/8, lanes 16-31
  // the same rows at chunk kk/8 + 1.
  line("#pragma unroll");
  open("for (int bi = 0; bi < " + std::to_string(mblocks) + "; ++bi)");
  line("const int r = wm * " + std::to_string(l.tm) + " + bi * 16 + (fs_lane & 15);");
  line("const unsigned addr = sa + 16u * (unsigned)(" +
       swizzled(g.bk / 8, "r", "((" + kk + ") >> 3) + (fs_lane >> 4)") + ");");
  line(
      "asm volatile(\"ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\" : "
      "\"=r\"(" +
      af + "[bi][0]), \"=r\"(" + af + "[bi][1]), \"=r\"(" + af + "[bi][2]), \"=r\"(" + af +
      "[bi][3]) : \"r\"(addr));");
  close();
  // B fragments, transposed, two 8-column blocks per ldmatrix.x4: lanes 0-15 address k rows
  // kk..kk+15 of block bj, lanes 16-31 those of block bj + 1.
  // K-major B (stored [n][k], as `x @ w.T` reads w): plain ldmatrix, lanes 0-7 address the
  // block's eight n rows at chunk kk/8 (b0), lanes 8-15 at kk/8 + 1 (b1), lanes 16-31 the same
  // for block bj + 1.
  std::string trans = g.b_kmajor ? "" : ".trans";
  line("#pragma unroll");
  open("for (int bj = 0; bj < " + std::to_string(nblocks) + "; bj += 2)");
  if (g.b_kmajor) {
    line("const int r = wn * " + std::to_string(l.tn) +
         " + (bj + (fs_lane >> 4)) * 8 + (fs_lane & 7);");
    line("const unsigned addr = sb + 16u * (unsigned)(" +
         swizzled(g.bk / 8, "r", "((" + kk + ") >> 3) + ((fs_lane >> 3) & 1)") + ");");
  } else {
    line("const int r = (" + kk + ") + (fs_lane & 15);");
    line("const unsigned addr = sb + 16u * (unsigned)(" +
         swizzled(g.bn / 8, "r",
                  "((wn * " + std::to_string(l.tn) + ") >> 3) + bj + (fs_lane >> 4)") +
         ");");
  }
  open("if (bj + 1 < " + std::to_string(nblocks) + ")");
  line("asm volatile(\"ldmatrix.sync.aligned.m8n8.x4" + trans +
       ".shared.b16 {%0,%1,%2,%3}, [%4];\" : "
       "\"=r\"(" +
       bf + "[bj][0]), \"=r\"(" + bf + "[bj][1]), \"=r\"(" + bf + "[bj + 1][0]), \"=r\"(" + bf +
       "[bj + 1][1]) : \"r\"(addr));");
  close();
  open("else");
  line("asm volatile(\"ldmatrix.sync.aligned.m8n8.x2" + trans +
       ".shared.b16 {%0,%1}, [%2];\" : "
       "\"=r\"(" +
       bf + "[bj][0]), \"=r\"(" + bf + "[bj][1]) : \"r\"(addr));");
  close();
  close();
}

void Emitter::emit_gemm_mma(const MmaLayout& l, const GemmShape& g, const std::string& out,
                            const std::string& af, const std::string& bf) {
  int64_t mblocks = l.tm / 16, nblocks = l.tn / 8;
  line("#pragma unroll");
  open("for (int bi = 0; bi < " + std::to_string(mblocks) + "; ++bi)");
  line("#pragma unroll");
  open("for (int bj = 0; bj < " + std::to_string(nblocks) + "; ++bj)");
  line("const int c = (bi * " + std::to_string(nblocks) + " + bj) * 4;");
  line("asm(\"mma.sync.aligned.m16n8k16.row.col.f32." + g.kind + "." + g.kind +
       ".f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\" : \"+f\"(" + out +
       "[c]), \"+f\"(" + out + "[c + 1]), \"+f\"(" + out + "[c + 2]), \"+f\"(" + out +
       "[c + 3]) : \"r\"(" + af + "[bi][0]), \"r\"(" + af + "[bi][1]), \"r\"(" + af +
       "[bi][2]), \"r\"(" + af + "[bi][3]), \"r\"(" + bf + "[bj][0]), \"r\"(" + bf + "[bj][1]));");
  close();
  close();
}

// The pipelined K loop, once with cp.async loaders and once with element loaders. One
// cp.async.wait_group and one barrier per K step of the ring. With `prefetch`, fragments are
// double-buffered: the next 16-wide step's ldmatrix (across the stage boundary too, right
// after the barrier) is issued before the current step's mma, hiding shared-memory latency.
void Emitter::emit_gemm_mainloop(bool fast, bool prefetch, const MmaLayout& l, const GemmShape& g,
                                 const std::string& out) {
  std::string la = fast ? "fs_a_fast" : "fs_a_slow";
  std::string lb = !fast ? "fs_b_slow" : g.b_kmajor ? "fs_bt_fast" : "fs_b_fast";
  std::string last = std::to_string(g.stages - 1);
  std::string wait =
      "asm volatile(\"cp.async.wait_group " + std::to_string(g.stages - 2) + ";\" ::: \"memory\");";
  std::string mb = std::to_string(l.tm / 16), nb1 = std::to_string(l.tn / 8 + 1);
  auto issue = [&](const std::string& stage, const std::string& iter) {
    open("if (" + iter + " < fs_nit)");
    line(la + "(" + stage + ", " + iter + ");");
    line(lb + "(" + stage + ", " + iter + ");");
    close();
    line("asm volatile(\"cp.async.commit_group;\" ::: \"memory\");");
  };
  auto stage_addresses = [&](const std::string& decl) {
    line(decl + "sa = fs_smem + fs_read * " + std::to_string(g.a_bytes) + ";");
    line(decl + "sb = fs_smem + " + std::to_string(g.stages * g.a_bytes) + " + fs_read * " +
         std::to_string(g.b_bytes) + ";");
  };
  line("#pragma unroll");
  open("for (int s = 0; s < " + last + "; ++s)");
  issue("s", "s");
  close();
  line("int fs_read = 0, fs_write = " + last + ";");
  if (!prefetch) {
    open("for (int it = 0; it < fs_nit; ++it)");
    line(wait);
    line("__syncthreads();");
    // The stage refilled now is the one every warp finished reading before the barrier.
    issue("fs_write", "it + " + last);
    line("fs_write = fs_write == " + last + " ? 0 : fs_write + 1;");
    stage_addresses("const unsigned ");
    line("fs_read = fs_read == " + last + " ? 0 : fs_read + 1;");
    line("#pragma unroll");
    open("for (int kk = 0; kk < " + std::to_string(g.bk) + "; kk += 16)");
    line("unsigned af[" + mb + "][4];");
    line("unsigned bf[" + nb1 + "][2];");
    emit_gemm_fragments(l, g, "af", "bf", "kk");
    emit_gemm_mma(l, g, out, "af", "bf");
    close();
    close();
    return;
  }
  int64_t steps = g.bk / 16;
  std::string ks_last = std::to_string(steps - 1);
  line(wait);
  line("__syncthreads();");
  stage_addresses("unsigned ");
  line("unsigned af[2][" + mb + "][4];");
  line("unsigned bf[2][" + nb1 + "][2];");
  emit_gemm_fragments(l, g, "af[0]", "bf[0]", "0");
  open("for (int it = 0; it < fs_nit; ++it)");
  line("#pragma unroll");
  open("for (int ks = 0; ks < " + std::to_string(steps) + "; ++ks)");
  // The refill comes first: with one step per stage the wait below must cover it. The stage it
  // overwrites was last read before the previous iteration's barrier.
  open("if (ks == 0)");
  issue("fs_write", "it + " + last);
  line("fs_write = fs_write == " + last + " ? 0 : fs_write + 1;");
  close();
  open("if (ks == " + ks_last + ")");
  line(wait);
  line("__syncthreads();");
  line("fs_read = fs_read == " + last + " ? 0 : fs_read + 1;");
  stage_addresses("");
  close();
  emit_gemm_fragments(l, g, "af[(ks + 1) & 1]", "bf[(ks + 1) & 1]",
                      "((ks + 1) % " + std::to_string(steps) + ") * 16");
  emit_gemm_mma(l, g, out, "af[ks & 1]", "bf[ks & 1]");
  close();
  if (steps % 2 == 1) {
    // An odd number of steps leaves the next iteration's first fragments in buffer 1.
    line("#pragma unroll");
    open("for (int i = 0; i < " + mb + " * 4; ++i)");
    line("af[0][i / 4][i % 4] = af[1][i / 4][i % 4];");
    close();
    line("#pragma unroll");
    open("for (int i = 0; i < " + nb1 + " * 2; ++i)");
    line("bf[0][i / 2][i % 2] = bf[1][i / 2][i % 2];");
    close();
  }
  close();
}

void Emitter::emit_gemm_loop(const Op& op, const MmaLayout& l, GemmOperand a, GemmOperand b) {
  const Op* dot = def_of(op.body->ops.back().operands[0]);
  const Type& at = fn_.type(dot->operands[0]);
  // sm_90: warpgroup MMA reads both tiles straight from shared memory in its 128-byte swizzled
  // layout, so the tiles must be whole 64-half column blocks and the warps one 16-row strip each.
  const bool wgmma = wgmma_tile(l, a.cols, b.cols) && a.cols % 64 == 0 && b.cols % 64 == 0;
  GemmShape g;
  g.bk = a.cols;
  g.bn = b.cols;
  g.stages = std::max<int64_t>(wgmma ? 3 : 2, fn_.num_stages());
  g.a_bytes = a.rows * a.cols * 2;
  g.b_bytes = b.rows * b.cols * 2;
  g.kind = at.dtype == DType::kF16 ? "f16" : "bf16";
  a.stage_bytes = g.a_bytes;
  b.stage_bytes = g.b_bytes;
  b.offset = g.stages * g.a_bytes;
  // The wgmma layout needs 1024-byte aligned tiles: room to round the scratch base up.
  const int64_t align = wgmma ? 1024 : 0;
  // Meta-parameter `tma` (sm_90 wgmma only, default 1; FLAGSTONE_COMPILER_TMA=0 turns it off
  // everywhere): interior tiles by the tensor memory accelerator, one mbarrier per stage after
  // the tiles. Measured on the H200 at 4096^3, 128x256x64: 582 TFLOP/s against 412 by cp.async.
  static const bool tma_enabled = [] {
    const char* env = std::getenv("FLAGSTONE_COMPILER_TMA");
    return !env || std::string(env) != "0";
  }();
  auto tma_meta = fn_.meta.find("tma");
  const bool tma = wgmma && tma_enabled && (tma_meta == fn_.meta.end() || tma_meta->second != 0);
  scratch_max_ =
      std::max(scratch_max_, g.stages * (g.a_bytes + g.b_bytes) + align + (tma ? 8 * g.stages : 0));
  ValueId res = op.results[0];
  const Type& rt = fn_.type(res);
  declare(res);
  std::string out = name(res);
  begin_elems(rt);
  line(out + "[j] = " + name(op.operands[3]) + "[j];");
  end_elems(rt);
  open("");
  line("// K loop as a " + std::to_string(g.stages) + "-stage cp.async pipeline feeding " +
       (wgmma ? "wgmma." : "mma.sync."));
  line("const long long fs_lo = " + name(op.operands[0]) + ", fs_hi = " + name(op.operands[1]) +
       ", fs_step = " + name(op.operands[2]) + ";");
  line("const int fs_nit = fs_hi > fs_lo ? (int)((fs_hi - fs_lo + fs_step - 1) / fs_step) : 0;");
  line("const unsigned fs_raw = (unsigned)__cvta_generic_to_shared(fs_scratch);");
  line("const unsigned fs_pad = " +
       std::string(wgmma ? "(1024u - (fs_raw & 1023u)) & 1023u" : "0u") + ";");
  line("const unsigned fs_smem = fs_raw + fs_pad;");
  line("unsigned char* const fs_tiles = fs_scratch + fs_pad;");
  line("const int wm = fs_warp / " + std::to_string(l.wn) + ", wn = fs_warp % " +
       std::to_string(l.wn) + ";");
  line("(void)wm; (void)wn;");
  emit_gemm_operand("fs_a", a, wgmma);
  emit_gemm_operand("fs_b", b, wgmma);
  // B read as its transpose: rows are n, chunks run along k (contiguous when stride(0) is 1).
  GemmOperand bt = b;
  std::swap(bt.rows, bt.cols);
  std::swap(bt.ptr.coef[0], bt.ptr.coef[1]);
  std::swap(bt.mask.lim[0], bt.mask.lim[1]);
  bool with_bt = bt.cols % 8 == 0;
  if (with_bt) emit_gemm_operand("fs_bt", bt, wgmma);
  // Meta-parameter `prefetch` (default 0): double-buffered fragments. Measured slower on the
  // H200 (the second set costs registers; the warps of other programs hide ldmatrix latency).
  auto pf = fn_.meta.find("prefetch");
  bool prefetch = pf != fn_.meta.end() && pf->second != 0;
  GemmShape gt = g;
  gt.b_kmajor = true;
  if (tma) {
    bool tma_a = emit_tma_operand("fs_a", a);
    g.tma = tma_a && emit_tma_operand("fs_b", b);
    gt.tma = tma_a && with_bt && emit_tma_operand("fs_bt", bt);
  }
  if (wgmma) {
    line("const bool fs_fast = fs_a_ok && fs_b_ok;");
    if (with_bt) {
      open("if (!fs_fast && fs_a_ok && fs_bt_ok)");
      emit_wgmma_mainloop(l, gt, out);
      close();
      open("else");
    } else {
      open("");
    }
    emit_wgmma_mainloop(l, g, out);
    close();
  } else {
    open("if (fs_a_ok && fs_b_ok)");
    emit_gemm_mainloop(true, prefetch, l, g, out);
    close();
    if (with_bt) {
      open("else if (fs_a_ok && fs_bt_ok)");
      emit_gemm_mainloop(true, prefetch, l, gt, out);
      close();
    }
    open("else");
    emit_gemm_mainloop(false, prefetch, l, g, out);
    close();
  }
  line("asm volatile(\"cp.async.wait_group 0;\" ::: \"memory\");");
  line("__syncthreads();");
  close();
}

// A store of a tile in the mma layout (a GEMM epilogue) through an affine pointer with bound
// masks: each thread writes its accumulator pairs straight to their addresses (8-byte or 4-byte
// vectors when the row is contiguous), instead of recovering row and column from a flat index
// per element.
bool Emitter::mma_store(const Op& op) {
  if (d_ != Dialect::kCuda || op.kind != OpKind::kStore) return false;
  const Type& vt = fn_.type(op.operands[1]);
  const MmaLayout* l = vt.rank() == 2 ? mma_layout(vt) : nullptr;
  if (!l) return false;
  std::unordered_set<ValueId> none;
  GemmScope scope{ir::kNoValue, &none};
  Affine p = affine(op.operands[0], scope);
  if (!p.ok || p.root < 0 || p.coef.size() != 2) return false;
  Bounds m;
  if (op.operands.size() > 2) {
    m = bounds(op.operands[2], scope);
    if (!m.ok || m.lim.size() != 2) return false;
  } else {
    m.lim.assign(2, "");
  }
  DType d = fn_.type(op.operands[0]).dtype;
  std::string vec = d == DType::kF32                        ? "float2"
                    : d == DType::kF16 || d == DType::kBF16 ? "ushort2"
                                                            : "";
  int64_t pair_bytes = static_cast<int64_t>(storage_size(d)) * 2;
  std::string big = "0x3fffffffffffffffLL";
  std::string v = name(op.operands[1]);
  open("");
  line("const long long so = " + p.base + ", s0 = " + p.coef[0] + ", s1 = " + p.coef[1] + ";");
  line("const long long l0 = " + (m.lim[0].empty() ? big : m.lim[0]) +
       ", l1 = " + (m.lim[1].empty() ? big : m.lim[1]) + ";");
  line("const bool on = " + (m.cond.empty() ? std::string("true") : m.cond) + ";");
  line(st(d) + "* const p = b" + std::to_string(p.root) + " + so;");
  std::string nb = std::to_string(l->tn / 8);
  line("#pragma unroll");
  open("for (int j = 0; j < " + std::to_string(elems(vt)) + "; j += 2)");
  line("const long long row = (fs_warp / " + std::to_string(l->wn) + ") * " +
       std::to_string(l->tm) + " + ((j >> 2) / " + nb +
       ") * 16 + (fs_lane >> 2) + ((j >> 1) & 1) * 8;");
  line("const long long col = (fs_warp % " + std::to_string(l->wn) + ") * " +
       std::to_string(l->tn) + " + ((j >> 2) % " + nb + ") * 8 + (fs_lane & 3) * 2;");
  open("if (on && row < l0)");
  line(st(d) + "* const q = p + row * s0 + col * s1;");
  if (!vec.empty()) {
    open("if (s1 == 1 && col + 1 < l1 && ((unsigned long long)q & " +
         std::to_string(pair_bytes - 1) + ") == 0)");
    line(vec + " w;");
    line("w.x = " + store_conv(d, v + "[j]") + ";");
    line("w.y = " + store_conv(d, v + "[j + 1]") + ";");
    line("*(" + vec + "*)q = w;");
    close();
    open("else");
  } else {
    open("");
  }
  line("if (col < l1) q[0] = " + store_conv(d, v + "[j]") + ";");
  line("if (col + 1 < l1) q[s1] = " + store_conv(d, v + "[j + 1]") + ";");
  close();
  close();
  close();
  close();
  return true;
}

}  // namespace flagstone::compiler
