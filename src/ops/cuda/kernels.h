// Launchers of the cuda provider's kernels: plain C++ signatures (device pointers, sizes,
// dtypes, a stream) so the registration code stays host C++ and all device code lives in .cu.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "flagstone/base/dtype.h"

namespace flagstone::ops::cuda {

inline constexpr int kMaxLayoutDims = 8;

// Shapes and element strides of up to three operands walked together (operand 0 is the output).
struct NdLayout {
  int ndim = 0;
  int64_t sizes[kMaxLayoutDims] = {};
  int64_t strides[3][kMaxLayoutDims] = {};
};

// The kernel variant FLAGSTONE_CUDA_VARIANT selects (read on first use), -1 when unset (each op
// its default); set_tuning_variant replaces it for timing tools that compare variants in one
// process (-1: defaults again).
int tuning_variant_override();
void set_tuning_variant(int variant);
// Streaming multiprocessors of the current device (asked once per device; 108 if unknown).
int current_device_sm_count();

enum class BinaryKind { kAdd, kMul };
enum class ActKind { kSilu, kGeluErf, kGeluTanh };

// ---- elementwise.cu ----
// out = a + alpha * b, or a * b; `layout` null when all three are contiguous over n elements
// (with b_period > 0: b is a contiguous row of b_period elements repeated over the leading dims).
cudaError_t launch_binary(BinaryKind kind, DType dtype, void* out, const void* a, const void* b,
                          float alpha, int64_t n, const NdLayout* layout, int64_t b_period,
                          cudaStream_t stream);
// Contiguous conversion between f32, f16 and bf16.
cudaError_t launch_cast(DType from, DType to, void* out, const void* in, int64_t n,
                        cudaStream_t stream);
// out[r, i] = act(x[r, i]) * x[r, d + i] over rows of 2d inputs.
cudaError_t launch_act_and_mul(ActKind act, DType dtype, void* out, const void* x, int64_t rows,
                               int64_t d, cudaStream_t stream);

// ---- norm.cu (rows of n contiguous elements, one block per row) ----
cudaError_t launch_softmax(DType dtype, void* out, const void* x, int64_t rows, int64_t n, bool log,
                           cudaStream_t stream);
// out = rms_norm(x [+ residual]) * w; with a residual, residual_out receives x + residual.
cudaError_t launch_rms_norm(DType dtype, void* out, void* residual_out, const void* x,
                            const void* residual, const void* weight, int64_t rows, int64_t n,
                            float eps, cudaStream_t stream);
cudaError_t launch_layer_norm(DType dtype, void* out, const void* x, const void* weight,
                              const void* bias, int64_t rows, int64_t n, float eps,
                              cudaStream_t stream);

// ---- llm.cu ----
struct RotaryArgs {
  void* out = nullptr;
  const void* x = nullptr;
  const void* positions = nullptr;
  bool positions_i64 = true;
  const void* cos = nullptr;  // [max_positions, half]
  const void* sin = nullptr;
  DType table_dtype = DType::kF32;
  int64_t tokens = 0, heads = 0, head_dim = 0, half = 0, max_positions = 0;
  bool neox = true;
};
cudaError_t launch_rotary(DType dtype, const RotaryArgs& args, cudaStream_t stream);
// Copies rows of `row_bytes` from weight[index[i]] to out[i]; rows out of range get 0xff bytes.
cudaError_t launch_embedding(void* out, const void* weight, const void* index, bool index_i64,
                             int64_t count, int64_t table_rows, int64_t row_bytes,
                             cudaStream_t stream);
// Per-row losses into `losses` (f32, n rows); then, unless `per_row_out` is set, the mean or sum
// over non-ignored rows into out[0]. With per_row_out the losses go straight to out (dtype).
struct CrossEntropyArgs {
  void* out = nullptr;
  float* losses = nullptr;  // scratch of n floats (and n counts after it) for mean/sum
  const void* logits = nullptr;
  const void* target = nullptr;
  bool target_i64 = true;
  int64_t rows = 0, classes = 0, ignore_index = -100;
  float label_smoothing = 0;
  int reduction = 0;  // 0 none, 1 mean, 2 sum
};
cudaError_t launch_cross_entropy(DType dtype, const CrossEntropyArgs& args, cudaStream_t stream);

// ---- attention.cu ----
struct AttentionArgs {
  void* out = nullptr;
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  int64_t batch = 0, q_heads = 0, kv_heads = 0, q_len = 0, kv_len = 0, head_dim = 0, v_dim = 0;
  int64_t q_stride[4] = {}, k_stride[4] = {}, v_stride[4] = {}, o_stride[4] = {};
  float scale = 1;
  bool causal = false;
  int64_t causal_shift = 0;  // query i sees keys j <= i + shift
  const void* mask = nullptr;
  DType mask_dtype = DType::kBool;
  int64_t mask_stride[4] = {};  // broadcast strides over [batch, heads, q_len, kv_len]
  // Paged decode: keys of sequence s (one query row each) live in block_table rows.
  const void* block_table = nullptr;
  bool table_i64 = false;
  const void* seq_lens = nullptr;
  bool lens_i64 = false;
  int64_t block_size = 0, max_blocks = 0, num_blocks = 0;
  // Decode over long caches: keys split over `splits` blocks per row, merged from `partials`
  // (rows * heads * batch * splits * (3 + v_dim) floats of device memory).
  int splits = 1;
  float* partials = nullptr;
  // Decode kernel: one zeroed ticket counter per (sequence, kv head); its last split resets it.
  unsigned* counters = nullptr;
};
cudaError_t launch_attention(DType dtype, const AttentionArgs& args, cudaStream_t stream);
// True when the tensor-core flash kernel serves these arguments (f16/bf16, head_dim 64..256...).
bool flash_attention_supported(DType dtype, const AttentionArgs& args);
cudaError_t launch_flash_attention(DType dtype, const AttentionArgs& args, cudaStream_t stream);
// Merges `splits` partial results per row from `partials` into `out` (f16/bf16).
cudaError_t launch_attention_combine(DType dtype, const AttentionArgs& args, cudaStream_t stream);
// ---- attention_decode.cu: one query row per head, GQA groups served together ----
bool decode_attention_supported(DType dtype, const AttentionArgs& args);
// At most 128 splits; with more than one, the last split of each kv head merges the partials
// (args.partials, args.counters), so no combine launch follows.
cudaError_t launch_decode_attention(DType dtype, const AttentionArgs& args, cudaStream_t stream);

// ---- sample.cu ----
// Per row of n contiguous elements, the first k in order (NaN first, then largest or smallest
// value, ties by lower index): indices (i64) and/or values (the input dtype).
struct SelectArgs {
  const void* x = nullptr;
  int64_t rows = 0, n = 0, k = 1;
  bool largest = true;
  void* values = nullptr;
  int64_t* indices = nullptr;
};
cudaError_t launch_select(DType dtype, const SelectArgs& args, cudaStream_t stream);

// ---- sampler.cu ----
// One token per row of logits [rows, n] as the reference samples it (temperature > 0; top_k
// either off (0 or >= n, and then top_p must be 1) or at most 1024).
struct SampleArgs {
  const void* logits = nullptr;
  int64_t rows = 0, n = 0;
  double temperature = 1, top_p = 1, min_p = 0;
  int64_t top_k = 0;
  uint64_t seed = 0, offset = 0;
  int64_t* out = nullptr;
};
cudaError_t launch_sample(DType dtype, const SampleArgs& args, cudaStream_t stream);
// multinomial over rows of non-negative weights [rows, n] with the reference's draws (sample s
// of row r takes Philox element r * samples + s). Without replacement n is at most
// kMaxMultinomialN (one bit per category in shared memory). The first invalid row is reported
// in *status as row * 4 + kind (0: a negative/inf/NaN weight, 1: zero sum, 2: too few nonzero
// weights); all ones when every row is valid.
inline constexpr int64_t kMaxMultinomialN = int64_t{1} << 18;
struct MultinomialArgs {
  const void* probs = nullptr;
  int64_t rows = 0, n = 0, samples = 1;
  bool replacement = false;
  uint64_t seed = 0, offset = 0;
  int64_t* out = nullptr;
  unsigned long long* status = nullptr;
};
cudaError_t launch_multinomial(DType dtype, const MultinomialArgs& args, cudaStream_t stream);

// ---- quant.cu ----
enum class QuantFormat { kInt8, kQ8_0, kQ4_0 };
struct QuantArgs {
  void* out = nullptr;           // [m, n] of the activation dtype
  const void* x = nullptr;       // [m, k] contiguous
  const void* weight = nullptr;  // n rows of row_bytes
  QuantFormat format = QuantFormat::kInt8;
  int64_t m = 0, n = 0, k = 0, row_bytes = 0;
  const void* scale = nullptr;  // int8: [n] per-row scales
  DType scale_dtype = DType::kF32;
  const void* bias = nullptr;  // [n] or null
  DType bias_dtype = DType::kF32;
};
// out = x @ dequant(weight)^T (* scale) + bias, reading the weight once per 4 rows of x.
cudaError_t launch_quant_gemv(DType dtype, const QuantArgs& args, cudaStream_t stream);
// out [n, k] of `dtype` = dequant(weight) (times the row scale for int8).
cudaError_t launch_dequantize(DType dtype, void* out, const QuantArgs& args, cudaStream_t stream);

}  // namespace flagstone::ops::cuda
