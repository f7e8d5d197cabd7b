// The cuda provider's few-row matrix product (decode's linear): the launcher of gemv.cu, and the
// registration and refusal check of gemv_ops.cc that blas.cc consults before taking a call.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "flagstone/base/dtype.h"

namespace flagstone::ops {
struct KernelArgs;
class Registry;
}  // namespace flagstone::ops

namespace flagstone::ops::cuda {

// The most activation rows the GEMV serves; more rows make the product compute-bound (cuBLAS).
inline constexpr int64_t kGemvMaxRows = 8;

// out[r, j] = sum_i x[r, i] * w[j, i] (+ bias[j]) for r < m <= kGemvMaxRows, j < n, i < k; one
// dtype for x, w, bias and out; leading dims in elements, unit stride along k and along out's rows.
struct GemvArgs {
  void* out = nullptr;
  const void* x = nullptr;
  const void* w = nullptr;
  const void* bias = nullptr;  // [n] or null
  int64_t m = 0, n = 0, k = 0;
  int64_t ldx = 0, ldw = 0, ldo = 0;
  // Tuning overrides for the timing tool; 0 picks from the shape and the device's SM count.
  int warps_per_row = 0;
  int unroll = 0;
  // The caller promises that no kernel still running before this one writes w (the decode step's
  // constant weights): the first weight loads may then start before the previous kernel ends.
  bool early_weights = false;
};

cudaError_t launch_gemv(DType dtype, const GemvArgs& args, cudaStream_t stream);

// The decode step's fused form of the same product (the engine calls it directly): what the
// x rows are made from before the product, and what the result is added to after it.
enum class GemvPrologue {
  kNone,     // x rows as given
  kRmsNorm,  // x = rms_norm(x) * norm_weight, rounded to the dtype (the rms_norm op's formula)
  kSiluMul,  // x row r is [g (k), u (k)] at x + r * ldx: x = silu(g) * u, rounded to the dtype
};
// What the product becomes after it (the streamed GEMV's alone).
enum class GemvEpilogue {
  kNone,
  // The weight's n rows are gate (n / 2) then up (n / 2): out[j] = silu(g) * u of the rounded
  // y[j] and y[n / 2 + j] for j < n / 2, rounded (silu_and_mul after the product); out has n / 2
  // columns. Each block owns both halves of its rows, so the activation needs no kernel of its own.
  kSiluMul,
};
// The greedy pick a decode step's output head can make as it ends (the streamed GEMV's, one row,
// no silu epilogue): the index of the largest output (NaN first, then the larger value, ties by
// the lower index: ops::argmax's order on the rounded outputs). Each block leaves its best in
// `scratch` (16 bytes a block, room for `scratch_blocks`); the last block to finish (a ticket at
// `ticket`, zeroed, left zero) picks among them, writes the index to out[0], then, with
// `advance`, writes it to host[advance[0] % host_slots] as well when `host` is set (page-locked
// memory as the device addresses it) and adds one to each of advance[0 .. advance_count): the
// step's position and length, so a recorded step replays at the next position.
struct GemvPick {
  int64_t* out = nullptr;  // null: no pick
  void* scratch = nullptr;
  int64_t scratch_blocks = 0;
  unsigned* ticket = nullptr;
  int64_t* advance = nullptr;
  int advance_count = 0;
  int64_t* host = nullptr;
  int64_t host_slots = 0;
};
struct FusedGemvArgs : GemvArgs {
  GemvPrologue prologue = GemvPrologue::kNone;
  GemvEpilogue epilogue = GemvEpilogue::kNone;
  const void* norm_weight = nullptr;  // [k], for kRmsNorm
  float eps = 0;
  // out[r, j] = residual[r, j] + round(W x + bias) when set (rows of stride ldo; may be `out`:
  // each element is read and written by the one thread that owns it).
  const void* residual = nullptr;
  // Programmatic dependent launch (cuda/pdl.cuh: sm_90 and up, unless FLAGSTONE_CUDA_PDL=0): the
  // first weight tiles load before waiting for the previous kernel, and the next kernel may
  // launch once x is staged.
  bool pdl = false;
  int blocks_per_sm = 0;  // 0: from the shape (FLAGSTONE_GEMV_BPSM overrides, for sweeps)
  // The streamed GEMV asks L2 to keep the weight (evict_last instead of evict_first), so a weight
  // read every decode step can still be there at the next one.
  bool keep_in_l2 = false;
  GemvPick pick;  // the streamed GEMV's alone
  // The step's embedding lookup in front of its first product (the streamed GEMV's alone, one
  // row, no silu prologue): with x_index set, x is row x_index[0] of the table at `x` (x_rows
  // rows of ldx elements; an index out of range gives NaN, as ops embedding does), and the first
  // block also writes that row, before the prologue, to x_out (the residual stream's start).
  const int64_t* x_index = nullptr;
  int64_t x_rows = 0;
  void* x_out = nullptr;
};
// Needs 16-byte aligned x, w, norm_weight and rows (k, ldx, ldw multiples of 16 bytes) and the
// staged x rows (m * k elements) within shared memory; the reason when not, empty when served.
const char* fused_gemv_refusal(DType dtype, const FusedGemvArgs& args);
cudaError_t launch_fused_gemv(DType dtype, const FusedGemvArgs& args, cudaStream_t stream);

// A GEMV tuning override from the environment (FLAGSTONE_GEMV_*): its integer value, 0 when unset.
int gemv_env_int(const char* name);

// gemv_stream.cu: the same product for one row, each block streaming its run of weight rows
// through a shared-memory ring with bulk copies (sm_90), the first ones (and the norm weight)
// asked for before it waits on the kernel in front (so early_weights is implied: only for
// weights no kernel in flight writes); the prologue and residual of the fused form are served
// as well. Needs contiguous weight rows of a multiple of 2 KiB, 16-byte aligned x, weight and
// norm weight; the reason when not, empty when served.
struct StreamedGemvTuning {  // 0: the default, or FLAGSTONE_GEMV_RING_KIB / _STREAM_BPSM /
                             // _CHUNK_KIB
  int ring_kib = 0;          // shared memory for chunks in flight, per block
  int blocks_per_sm = 0;
  int chunk_kib = 0;  // one bulk copy (2 to 16 KiB; the largest that divides a row)
};
const char* streamed_gemv_refusal(DType dtype, const FusedGemvArgs& args);
cudaError_t launch_streamed_gemv(DType dtype, const FusedGemvArgs& args, cudaStream_t stream,
                                 StreamedGemvTuning tuning = {});

// gemv_ops.cc: registers cuda/native/linear and cuda/native/mm.
void register_cuda_gemv(Registry& r);
// Why the native GEMV does not serve this linear or mm call; empty when it does.
std::string gemv_refusal(const KernelArgs& args);
// True when the native GEMV serves the call, measured faster than cuBLAS there (one row, a weight
// of at most 4096 x 8192), and the policy lets dispatch reach it (native allowed for the op, not
// strict): cuBLAS then yields the call to it.
bool gemv_preferred(const KernelArgs& args);

}  // namespace flagstone::ops::cuda
