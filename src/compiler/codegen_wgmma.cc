// The sm_90 (Hopper) variant of the CUDA GEMM pipeline: the K loop's tiles go global -> shared
// through the same cp.async ring as on Ampere, but laid out as wgmma's 128-byte swizzle, and
// each warpgroup (4 warps) multiplies its 64 rows by the whole B tile with wgmma.mma_async,
// both operands read by the tensor cores straight from shared memory through matrix
// descriptors.
//
// mma.sync on Hopper reaches about two thirds of the tensor-core rate at best; warpgroup MMA
// is asynchronous, so the next tiles' copies overlap it, and one wgmma group stays in flight
// while the warps go on to the next barrier.
#include <cstdlib>
#include <string>
#include <utility>

#include "codegen_emitter.h"

namespace flagstone::compiler {

bool Emitter::wgmma_shape(int64_t m, int64_t n, int64_t k) const {
  if (d_ != Dialect::kCuda || arch_ != 90) return false;
  // FLAGSTONE_COMPILER_WGMMA=0 keeps every kernel on mma.sync (a fallback switch).
  static const bool enabled = [] {
    const char* env = std::getenv("FLAGSTONE_COMPILER_WGMMA");
    return !env || std::string(env) != "0";
  }();
  if (!enabled) return false;
  // Meta-parameter `wgmma` (default 1): 0 keeps mma.sync on sm_90 (for comparisons).
  auto on = fn_.meta.find("wgmma");
  if (on != fn_.meta.end() && on->second == 0) return false;
  return m % 64 == 0 && threads_ == m / 16 * 32 && n % 64 == 0 && n <= 256 && k % 64 == 0;
}

bool Emitter::wgmma_tile(const MmaLayout& l, int64_t k, int64_t n) const {
  return wgmma_shape(l.m, n, k) && l.n == n && l.wn == 1 && l.tm == 16;
}

namespace {

// `asm volatile` of one m64nNk16 wgmma accumulating into out[0 .. N/2): the accumulator
// fragment of a warp is its 16-row strip in mma.sync's m16n8 order, 8 columns per 4 registers,
// which is how the emitter's mma layout with one warp per 16 rows holds the tile.
std::string wgmma_asm(int64_t n, const std::string& kind, const std::string& out,
                      const std::string& da, const std::string& db, bool trans_b) {
  int64_t regs = n / 2;
  std::string s = "asm volatile(\"{\\n.reg .pred p;\\nsetp.ne.b32 p, %" + std::to_string(regs + 2) +
                  ", 0;\\nwgmma.mma_async.sync.aligned.m64n" + std::to_string(n) + "k16.f32." +
                  kind + "." + kind + " {";
  for (int64_t i = 0; i < regs; ++i) s += (i ? ", %" : "%") + std::to_string(i);
  s += "}, %" + std::to_string(regs) + ", %" + std::to_string(regs + 1) + ", p, 1, 1, 0, " +
       (trans_b ? "1" : "0") + ";\\n}\\n\" : ";
  for (int64_t i = 0; i < regs; ++i)
    s += std::string(i ? ", " : "") + "\"+f\"(" + out + "[" + std::to_string(i) + "])";
  s += " : \"l\"(" + da + "), \"l\"(" + db + "), \"r\"(1));";
  return s;
}

}  // namespace

// One barrier per K step: it publishes the stage every thread's cp.async copies filled (made
// visible to the tensor cores' async proxy by each thread's fence first) and tells that every
// warpgroup has retired its wgmma of two steps back, whose stage is refilled once this step's
// MMAs are issued.
// wgmma of step `it` stays in flight until the wait at the end of step it + 1.
//
// With B stored [k][n] the copies are picked per step (`fs_fast`: 16-byte cp.async, else element
// loads) so that the long unrolled MMA code exists once; B copied as [n][k] has its own loop.
void Emitter::emit_wgmma_mainloop(const MmaLayout& l, const GemmShape& g, const std::string& out) {
  const int64_t stages = g.stages, lead = stages - 2, regs = l.n / 2;
  const std::string last = std::to_string(stages - 1);
  const std::string bx = g.b_kmajor ? "fs_bt" : "fs_b";
  // With TMA every fill completes one phase of its stage's mbarrier: thread 0 arrives with the
  // byte count the copies will deliver, or plainly when cp.async (or nothing) fills the stage.
  auto issue = [&](const std::string& stage, const std::string& iter) {
    std::string args = "(" + stage + ", " + iter + ");";
    std::string bar = "fs_bars + 8u * (unsigned)(" + stage + ")";
    std::string arrive =
        "if (fs_tid == 0) asm volatile(\"mbarrier.arrive.shared::cta.b64 _, [%0];\" :: \"r\"(" +
        bar + ") : \"memory\");";
    open("if (" + iter + " < fs_nit)");
    if (g.tma) {
      open("if (fs_a_tma_fits(" + iter + ") && " + bx + "_tma_fits(" + iter + "))");
      open("if (fs_tid == 0)");
      line("asm volatile(\"mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\" :: \"r\"(" +
           bar + "), \"r\"(" + std::to_string(g.a_bytes + g.b_bytes) + ") : \"memory\");");
      line("fs_a_tma(" + stage + ", " + iter + ", " + bar + ");");
      line(bx + "_tma(" + stage + ", " + iter + ", " + bar + ");");
      close();
      close();
      open("else");
    }
    if (g.b_kmajor) {
      line("fs_a_fast" + args);
      line("fs_bt_fast" + args);
    } else {
      open("if (fs_fast)");
      line("fs_a_fast" + args);
      line("fs_b_fast" + args);
      close();
      open("else");
      line("fs_a_slow" + args);
      line("fs_b_slow" + args);
      close();
    }
    if (g.tma) {
      line(arrive);
      close();
    }
    close();
    if (g.tma) {
      open("else");
      line(arrive);
      close();
    }
    line("asm volatile(\"cp.async.commit_group;\" ::: \"memory\");");
  };
  // Accumulators pinned in order around the asynchronous MMAs (no read or write of them may
  // move across a wgmma fence or wait).
  auto pin = [&] {
    for (int64_t i = 0; i < regs; ++i)
      line("asm volatile(\"\" : \"+f\"(" + out + "[" + std::to_string(i) + "]) :: \"memory\");");
  };
  // Matrix descriptor: start address, leading and stride byte offsets (16-byte units), 128-byte
  // swizzle (layout type 1 in bits 62-63).
  line(
      "auto fs_desc = [](unsigned addr, unsigned lbo, unsigned sbo) -> unsigned long long { "
      "return (unsigned long long)((addr & 0x3FFFFu) >> 4) | ((unsigned long long)(lbo >> 4) << "
      "16) | ((unsigned long long)(sbo >> 4) << 32) | (1ull << 62); };");
  line("const unsigned fs_bars = fs_smem + " + std::to_string(stages * (g.a_bytes + g.b_bytes)) +
       "u;");
  line("(void)fs_bars;");
  if (g.tma) {
    open("if (fs_tid == 0)");
    for (int64_t s = 0; s < stages; ++s)
      line("asm volatile(\"mbarrier.init.shared::cta.b64 [%0], 1;\" :: \"r\"(fs_bars + " +
           std::to_string(8 * s) + "u) : \"memory\");");
    line("asm volatile(\"fence.mbarrier_init.release.cluster;\" ::: \"memory\");");
    close();
    line("__syncthreads();");
  }
  for (int64_t s = 0; s < lead; ++s) issue(std::to_string(s), std::to_string(s));
  line("int fs_read = 0, fs_write = " + std::to_string(lead) + ";");
  line("unsigned fs_phase = 0;");
  line("(void)fs_phase;");
  // Warpgroup w multiplies rows 64w.. of A: 64 rows of 128 bytes into each column block.
  line("const unsigned fs_sa0 = fs_smem + (unsigned)(fs_warp >> 2) * 8192u;");
  line("const unsigned fs_sb0 = fs_smem + " + std::to_string(stages * g.a_bytes) + "u;");
  pin();
  open("for (int it = 0; it < fs_nit; ++it)");
  line("asm volatile(\"cp.async.wait_group " + std::to_string(stages - 3) + ";\" ::: \"memory\");");
  line("asm volatile(\"fence.proxy.async.shared::cta;\" ::: \"memory\");");
  if (g.tma) {
    line("unsigned fs_full = 0;");
    open("while (!fs_full)");
    line(
        "asm volatile(\"{\\n.reg .pred p;\\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], "
        "%2;\\nselp.u32 %0, 1, 0, p;\\n}\\n\" : \"=r\"(fs_full) : \"r\"(fs_bars + 8u * "
        "(unsigned)fs_read), \"r\"(fs_phase) : \"memory\");");
    close();
  }
  line("__syncthreads();");
  // A is K-major: 8-row groups 1024 bytes apart (stride offset), 16-wide K steps 32 bytes into
  // the swizzled row. B as stored [k][n] is MN-major (transposed operand): 64-column blocks
  // BK * 128 bytes apart (leading offset), 8-row k groups 1024 bytes apart. B copied as [n][k]
  // is K-major like A.
  std::string b_lbo = g.b_kmajor ? "16u" : std::to_string(g.bk * 128) + "u", b_sbo = "1024u";
  // Meta-parameter `mn_swap` (diagnostic, default 0): the MN-major B descriptor with its two
  // offsets exchanged, to tell on a device which reading of the PTX layout tables it follows.
  auto swap = fn_.meta.find("mn_swap");
  if (!g.b_kmajor && swap != fn_.meta.end() && swap->second != 0) std::swap(b_lbo, b_sbo);
  line("const unsigned long long da = fs_desc(fs_sa0 + (unsigned)fs_read * " +
       std::to_string(g.a_bytes) + "u, 16u, 1024u);");
  line("const unsigned long long db = fs_desc(fs_sb0 + (unsigned)fs_read * " +
       std::to_string(g.b_bytes) + "u, " + b_lbo + ", " + b_sbo + ");");
  line("asm volatile(\"wgmma.fence.sync.aligned;\" ::: \"memory\");");
  for (int64_t ks = 0; ks < g.bk / 16; ++ks) {
    int64_t a_off = (ks / 4) * l.m * 128 + (ks % 4) * 32;
    int64_t b_off = g.b_kmajor ? (ks / 4) * g.bn * 128 + (ks % 4) * 32 : ks * 16 * 128;
    line(wgmma_asm(l.n, g.kind, out, "da + " + std::to_string(a_off / 16) + "ull",
                   "db + " + std::to_string(b_off / 16) + "ull", !g.b_kmajor));
  }
  line("asm volatile(\"wgmma.commit_group.sync.aligned;\" ::: \"memory\");");
  // The refill goes out while the tensor cores work on this step.
  issue("fs_write", "it + " + std::to_string(lead));
  line("fs_write = fs_write == " + last + " ? 0 : fs_write + 1;");
  line("asm volatile(\"wgmma.wait_group.sync.aligned 1;\" ::: \"memory\");");
  line("fs_read = fs_read == " + last + " ? 0 : fs_read + 1;");
  line("fs_phase ^= fs_read == 0 ? 1u : 0u;");
  close();
  line("asm volatile(\"wgmma.wait_group.sync.aligned 0;\" ::: \"memory\");");
  pin();
  if (g.tma) {
    // Every phase has completed (fills past the end arrive plainly); the barriers' memory may
    // serve as scratch again once they are invalidated.
    line("__syncthreads();");
    open("if (fs_tid == 0)");
    for (int64_t s = 0; s < stages; ++s)
      line("asm volatile(\"mbarrier.inval.shared::cta.b64 [%0];\" :: \"r\"(fs_bars + " +
           std::to_string(8 * s) + "u) : \"memory\");");
    close();
  }
}

}  // namespace flagstone::compiler
