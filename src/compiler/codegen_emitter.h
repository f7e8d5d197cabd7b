// The source emitter shared by codegen.cc (elementwise, memory, loops, entry point),
// codegen_reduce.cc (reductions) and codegen_dot.cc (tile dot). Internal to the compiler.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "codegen.h"
#include "flagstone/compiler/ir.h"

namespace flagstone::compiler {

// Whether contiguous multi-group accesses get a whole-tile vector branch (on with
// FLAGSTONE_COMPILER_VEC_UNIFORM=1).
bool uniform_vector_path();

using ir::Op;
using ir::OpKind;
using ir::Type;
using ir::ValueId;

// Emits one kernel; see emit_source in codegen.h for the thread/tile model.
class Emitter {
 public:
  Emitter(const ir::Function& fn, Dialect dialect, int64_t threads, int arch)
      : fn_(fn), d_(dialect), threads_(dialect == Dialect::kCpu ? 1 : threads), arch_(arch) {}

  std::string run(int64_t* local_bytes);
  const std::vector<TensorMapRecipe>& tensor_maps() const { return maps_; }

 private:
  bool gpu() const { return d_ != Dialect::kCpu; }
  std::string ct(DType t) const;  // compute type
  std::string st(DType t) const;  // storage type
  std::string index_t() const { return ct(DType::kI64); }
  std::string vtype(const Type& t) const { return t.pointer ? index_t() : ct(t.dtype); }
  int64_t elems(const Type& t) const { return (t.numel() + threads_ - 1) / threads_; }
  std::string name(ValueId id) const { return names_.at(id); }
  std::string ref(ValueId id) const { return fn_.type(id).is_tile() ? name(id) + "[j]" : name(id); }
  std::string local_q() const {
    return d_ == Dialect::kOpenCL ? "__local " : d_ == Dialect::kCuda ? "" : "";
  }
  void line(const std::string& s) {
    body_.append(static_cast<size_t>(indent_) * 2, ' ');
    body_ += s;
    body_ += "\n";
  }
  void open(const std::string& s) {
    line(s + " {");
    ++indent_;
  }
  void close() {
    --indent_;
    line("}");
  }
  // Declares value `id` (tile array or scalar) with a fresh name.
  std::string declare(ValueId id, const std::string& init = "");
  // Loops over the elements this thread owns of a tile of `numel` elements: j is the slot,
  // f the flat index.
  void begin_elems(const Type& t);
  // Consecutive elements a GPU thread owns (4 for tiles that divide evenly, so contiguous
  // loads and stores can move 16 bytes at once), 1 for the strided t, t+T, ... layout.
  int64_t vec_width(const Type& t) const;
  // The flat index a GPU thread's slot `slot` of a tile of type `t` holds.
  std::string flat_of(const Type& t, const std::string& slot) const;
  // A contiguous load/store as vector accesses with a scalar fallback; false if not possible.
  bool vector_memory(const Op& op);
  bool raw_bits(const Op& op);
  void end_elems(const Type& t);
  // Wraps a computed expression into the value's dtype (rounding f16/bf16, narrowing ints).
  std::string wrap(DType d, const std::string& e) const;
  std::string literal(DType d, double fv, int64_t iv) const;
  std::string math(const char* base, DType d) const;
  std::string load_conv(DType d, const std::string& e) const;
  std::string store_conv(DType d, const std::string& e) const;
  // Makes the whole tile `id` readable by every thread at the returned array name.
  std::string materialize(ValueId id, int64_t* cursor);
  void barrier() {
    if (d_ == Dialect::kOpenCL) line("barrier(CLK_LOCAL_MEM_FENCE);");
    if (d_ == Dialect::kCuda) line("__syncthreads();");
  }
  std::string base_of(ValueId ptr) const { return "b" + std::to_string(roots_.at(ptr)); }

  void block(const ir::Block& b);
  void op(const Op& op);
  void emit_op(const Op& op);
  // GPU index arithmetic (integer, bool and pointer tiles built from aranges, constants and
  // scalars) is remembered as an expression of the flat index ("@"), so broadcasts and
  // transposes of it are recomputed in place instead of going through shared memory.
  void track_index(const Op& op);
  std::string at_index(const std::string& gen, const std::string& index) const;
  // The source flat index a broadcast or trans reads for destination flat index `f`.
  std::string move_index(const Op& op, const std::string& f) const;
  std::string expr_of(const Op& op, const std::vector<std::string>& args) const;
  void elementwise(const Op& op, const std::string& expr_j, const std::string& expr_scalar);
  std::string expr(const Op& op, bool tile) const;
  void memory(const Op& op);
  void reduce(const Op& op);
  void reduce_all(const Op& op);
  void reduce_grouped(const Op& op, int64_t group);
  void reduce_serial(const Op& op);
  std::string reduce_identity(OpKind kind, DType d) const;
  std::string reduce_step(OpKind kind, const std::string& x, const std::string& xi) const;
  void shuffle_combine(OpKind kind, DType d, int64_t from);
  // Declares a `count`-element array of `type` in local/shared scratch at *cursor.
  std::string scratch_array(const std::string& type, int64_t count, int64_t elem_size,
                            int64_t* cursor);
  void dot(const Op& op);
  // Tensor cores (CUDA, f16/bf16): tiles of a dot's result shape are laid out as mma.sync
  // accumulators, so the dot's result, its accumulator and everything elementwise on them stay
  // in registers; other shapes keep the strided layout.
  struct MmaLayout {
    int64_t m = 0, n = 0;    // tile shape
    int64_t wm = 1, wn = 1;  // warps along rows and columns
    int64_t tm = 0, tn = 0;  // rows and columns of one warp's part
  };
  void plan_mma(const ir::Block& b);
  const MmaLayout* mma_layout(const Type& t) const;
  std::string mma_flat_index(const MmaLayout& l, const std::string& j) const;
  bool dot_uses_mma(const Op& op) const;
  void dot_mma(const Op& op, const MmaLayout& l);
  void loop(const Op& op);
  // The CUDA GEMM pipeline (codegen_gemm.cc): a K loop of two tile loads feeding a tensor-core
  // dot becomes a cp.async ring buffer with swizzled shared tiles. False: the generic lowering.
  struct Affine {  // base + sum of coef[axis] * index[axis] (64-bit C expressions)
    bool ok = false;
    int root = -1;  // pointer values: the parameter they point into
    std::string base;
    std::vector<std::string> coef;
    int iv_degree = 0;        // degree of the loop variable in base
    bool iv_in_coef = false;  // whether a coefficient depends on the loop variable
  };
  struct Bounds {  // index[axis] < lim[axis] ("" = none) and cond
    bool ok = false;
    std::vector<std::string> lim;
    std::string cond;
  };
  struct GemmScope {
    ValueId iv;
    const std::unordered_set<ValueId>* defs;  // values the loop body defines
  };
  const Op* def_of(ValueId v);
  Affine affine(ValueId v, const GemmScope& scope);
  Bounds bounds(ValueId v, const GemmScope& scope);
  struct GemmOperand {  // one loaded tile: addresses, mask, shape, place in shared memory
    Affine ptr;
    Bounds mask;
    int64_t rows = 0, cols = 0, offset = 0, stage_bytes = 0;
  };
  struct GemmShape {
    int64_t bk = 0, bn = 0, stages = 2, a_bytes = 0, b_bytes = 0;
    std::string kind;       // mma input type: f16 or bf16
    bool b_kmajor = false;  // B in shared memory as [n][k] (copied from a transposed view)
    bool tma = false;       // sm_90: interior tiles by TMA (codegen_tma.cc)
  };
  bool gemm_loop(const Op& op);
  bool mma_store(const Op& op);
  // The 16-byte chunk index of chunk `ch` of row `r` in a shared tile with `per_row` chunks per
  // row: rows == 0 the ldmatrix swizzle, else wgmma's 128-byte swizzle for a tile of `rows`.
  static std::string tile_chunk(int64_t rows, int64_t per_row, const std::string& r,
                                const std::string& ch);
  void emit_gemm_operand(const std::string& prefix, const GemmOperand& o, bool wgmma);
  void emit_gemm_fragments(const MmaLayout& l, const GemmShape& g, const std::string& af,
                           const std::string& bf, const std::string& kk);
  void emit_gemm_mma(const MmaLayout& l, const GemmShape& g, const std::string& out,
                     const std::string& af, const std::string& bf);
  void emit_gemm_mainloop(bool fast, bool prefetch, const MmaLayout& l, const GemmShape& g,
                          const std::string& out);
  void emit_gemm_loop(const Op& op, const MmaLayout& l, GemmOperand a, GemmOperand b);
  // sm_90 (codegen_wgmma.cc): whether a dot's m x n result with k-wide tiles runs as warpgroup
  // MMA (each warp one 16-row strip, as wgmma's m64 accumulators lie), and its K loop.
  bool wgmma_tile(const MmaLayout& l, int64_t k, int64_t n) const;
  bool wgmma_shape(int64_t m, int64_t n, int64_t k) const;
  void emit_wgmma_mainloop(const MmaLayout& l, const GemmShape& g, const std::string& out);
  // `<x>_tma_fits(it)` and `<x>_tma(stage, it, bar)` for an operand; false (nothing emitted)
  // when no tensor map can describe it.
  bool emit_tma_operand(const std::string& x, const GemmOperand& o);
  // CUDA software pipelining of a K loop: a load whose addresses and mask depend only on the
  // loop variable and loop-invariant values is issued one iteration ahead into registers, so
  // its latency overlaps the iteration's compute. False when the load does not qualify.
  bool prefetch(const Op& op);

  const ir::Function& fn_;
  Dialect d_;
  int64_t threads_;
  int arch_;  // cuda: sm_XX as XX (90: the wgmma GEMM lowering); 0 otherwise
  std::vector<TensorMapRecipe> maps_;  // TMA descriptors the kernel takes after its parameters
  std::string body_;
  int indent_ = 1;
  int counter_ = 0;
  int64_t scratch_max_ = 0;
  int vector_checks_ = 0;  // names the whole-tile vector checks
  std::unordered_map<ValueId, std::string> names_;
  std::unordered_map<ValueId, int> roots_;
  std::map<std::vector<int64_t>, MmaLayout> mma_;
  std::unordered_map<ValueId, std::string> gen_;
  std::unordered_map<ValueId, const Op*> defs_;  // defining op of every value (def_of)
  std::unordered_set<ValueId> raw_;              // 16-bit loads whose bits are kept in <name>_b
  // Scalars each index expression in gen_ reads (for the prefetch's loop-invariance test).
  std::unordered_map<ValueId, std::unordered_set<ValueId>> gen_deps_;
  // Loops being emitted, innermost last: where to declare prefetch buffers, which values the
  // body defines.
  struct LoopInfo {
    ValueId iv = 0;
    std::string lo, hi, step;
    size_t decl_pos = 0;
    std::string decls;
    std::unordered_set<ValueId> defs;
  };
  std::vector<LoopInfo> loops_;
  std::string redirect_;  // while set, declare() reuses this name (prefetch into a buffer)
  std::string subst_;     // while set, the loop variable in index expressions reads as this  //
                          // pointer value -> pointer parameter index
};

}  // namespace flagstone::compiler
