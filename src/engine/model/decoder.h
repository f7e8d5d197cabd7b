// The decoder-only transformer every registered architecture builds on: token embedding,
// pre-norm attention with rope and GQA over a KV cache, gated SiLU MLP, final norm and head.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "flagstone/engine/model/model.h"
#include "flagstone/runtime/graph.h"
#include "op_runner.h"
#include "weights.h"

namespace flagstone::engine::detail {

struct RopeCacheArgs;      // cuda/kv_cache_write.h
struct RopeAttentionArgs;  // cuda/kv_cache_write.h
struct MegaArgs;           // cuda/decode_megakernel.h
struct QkvAttentionArgs;   // cuda/qkv_attention.h

// The device address of a tensor's first element (what the engine's own kernels are given).
inline void* address_of(const Tensor& t) {
  return static_cast<char*>(t.buffer().handle()) + t.byte_offset();
}

// What the decode step's fused linear does to its input first (DecoderModel::step_linear).
enum class StepPrologue { kNone, kRmsNorm, kSiluMul };

class DecoderModel : public Model {
 public:
  // Loads every weight from `source` as the architecture's traits and `options` ask.
  DecoderModel(const WeightSource& source, ModelConfig config, const Architecture& arch,
               const ModelOptions& options);

  const ModelConfig& config() const override { return config_; }
  const ModelInfo& info() const override { return info_; }
  KvCache new_cache(int64_t batch, int64_t capacity) const override;
  Tensor forward(const Tensor& tokens, KvCache& cache, bool all_logits) override;
  Tensor forward_greedy(const Tensor& tokens, KvCache& cache) override;
  const int64_t* greedy_host_ids(const KvCache& cache) const override;
  std::vector<OpTime> profile_forward(const Tensor& tokens, KvCache& cache) override;

 private:
  struct Layer {
    Tensor input_norm, post_norm;
    Tensor qkv, qkv_bias;  // q, k and v projections stacked: [(hq + 2 hk) * head_dim, hidden]
    Tensor q_norm, k_norm;
    Tensor o;
    Tensor gate_up;  // gate and up projections stacked: [2 * intermediate, hidden]
    Tensor down;
  };

  void load_weights(const WeightSource& source, const ModelOptions& options);
  void build_rope(WeightLoader& loader);
  DType matrix_dtype(const WeightLoader& loader, const std::vector<std::string>& names,
                     bool keep_quantized) const;
  Tensor attention(int64_t layer, const Tensor& h, const Tensor& positions, const Tensor& mask,
                   KvCache& cache, int64_t start);
  void describe_weights();

  // The decode step (one token per sequence) with everything that changes per step in device
  // memory, so it can be recorded once and replayed (decode_step.cc).
  struct DecodeState {
    int64_t batch = 0;
    std::vector<void*> storage;   // the cache's key and value buffers the recording points into
    Tensor tokens;                // i64 [batch, 1]: this step's ids
    Tensor step;                  // i64 [2 * batch]: each sequence's position, then its length
    int64_t step_start = -1;      // the position `step` holds (each step advances it on device)
    Tensor block_table;           // i64 [batch, 1]: sequence s is block s of the cache
    Tensor pick_scratch;          // the greedy pick's per-block picks and zeroed tickets
    bool rope_attention = false;  // the fused rotary + KV append + attention candidate
    Tensor attn_scratch;          // its partials and zeroed tickets
    bool attn_cluster = false;    // its splits merge through a cluster (rope_attention_clusters)
    // The q/k/v product, rotary, KV append and attention in one cluster kernel (one sequence,
    // sm_90; decode_qkv_attention.cc), when set.
    bool qkv_attention = false;
    Tensor logits;  // written by each replay
    // The greedy pick also writes each step's ids into page-locked host memory (slot position %
    // kGreedyHostSlots), where greedy_host_ids finds them: no copy on the stream between steps.
    runtime::PinnedHostBuffer host_ids;
    int64_t* host_ids_device = nullptr;  // host_ids as kernels address it; null: not written
    // The whole step as one persistent kernel (decode_mega.cc), when set: its arguments, the
    // layer table on the device, activation buffers and zeroed scratch.
    std::shared_ptr<MegaArgs> mega;
    Tensor mega_table, mega_acts, mega_scratch;
    runtime::Graph graph;
  };
  // The step's products with their neighbours fused (decode_fused.cc): x is normed (rms_norm
  // with `norm`) or is [g, u] turned into silu(g) * u before the product, and with `residual`
  // the result is added to it in place (returned); otherwise a new [rows, 1, n] tensor. With
  // `silu_after` the weight is [gate; up] and the result silu(gate) * up, [rows, 1, n / 2].
  // StepExtras: with `pick_into` (the head of a one-row step) the streamed GEMV also makes the
  // step's greedy pick as it ends, as pick_next would, and sets *picked to whether it did; with
  // `gather_ids` x is the embedding table and its input row number gather_ids[0], the row also
  // written to `gathered` (the residual stream's start; only where gathers_embedding said so).
  struct StepExtras {
    bool silu_after = false;
    DecodeState* pick_into = nullptr;
    bool* picked = nullptr;
    const Tensor* gather_ids = nullptr;
    Tensor gathered;
  };
  enum class FusedMode { kOff, kLayers, kAll };
  static constexpr int64_t kMaxFusedRows = 8;  // more rows: a GEMM (cuBLAS), unfused
  FusedMode fused_mode(int64_t rows) const;
  int64_t fused_max_elements() const;  // wider weights run their ops unfused
  Tensor step_linear(const Tensor& x, const Tensor& weight, const Tensor& bias,
                     StepPrologue prologue, const Tensor& norm, const Tensor& residual,
                     const StepExtras& extras) const;
  Tensor step_linear(const Tensor& x, const Tensor& weight, const Tensor& bias,
                     StepPrologue prologue, const Tensor& norm, const Tensor& residual) const {
    return step_linear(x, weight, bias, prologue, norm, residual, StepExtras());
  }
  // Whether a one-row step's first product (normed in front) takes the embedding lookup too
  // (FLAGSTONE_ENGINE_EMBED=op: never; the ops library's embedding kernel then runs first).
  bool gathers_embedding(const Layer& first, int64_t rows) const;
  // Whether a one-row step's gate/up product (normed in front) serves silu_after on the
  // streamed GEMV, so down takes the activation as its plain input (FLAGSTONE_ENGINE_SILU=down:
  // never; the activation is then down's prologue).
  bool silu_after_gate_up(const Layer& layer, int64_t rows) const;
  // Whether the step streams `weight` asking L2 to keep it for the next step
  // (FLAGSTONE_ENGINE_L2_KEEP_MIB: the q/k/v weights of the first layers up to that many MiB;
  // FLAGSTONE_ENGINE_L2_KEEP=o or =both picks the o weights, or both, instead). Off by default.
  bool kept_in_l2(const Tensor& weight) const;
  // A one-token product of the step, x [rows, 1, k] by weight [n, k] (the ops library's GEMV
  // with early weight loads where it serves, else ops linear); returns [rows, 1, n].
  Tensor step_product(const Tensor& x, const Tensor& weight, const Tensor& bias = {}) const;
  // The persistent step (decode_mega.cc): whether it is asked for, its setup for a new cache
  // (leaves state.mega unset, with the reason in info(), where it cannot serve), and one launch
  // returning the logits it writes.
  bool persistent_wanted() const;
  void setup_persistent(DecodeState& state, const KvCache& cache);
  Tensor persistent_step(DecodeState& state);
  void check_forward(const Tensor& tokens, const KvCache& cache) const;
  bool decode_on_device(const KvCache& cache) const;
  // One step; returns the logits (a copy), or with `greedy` the argmax ids the step wrote into
  // its input buffer.
  Tensor decode(const Tensor& tokens, KvCache& cache, bool greedy = false);
  DecodeState& decode_state(const KvCache& cache);
  Tensor decode_body(DecodeState& state, KvCache& cache);
  // The step's end: the greedy pick of `logits` written as the next step's ids, positions
  // advanced, on the device; returns `logits`.
  Tensor pick_next(DecodeState& state, const Tensor& logits);
  void write_kv(const KvCache& cache, int64_t layer, const Tensor& k, const Tensor& v,
                const Tensor& start) const;
  // Rotary of the q and k heads of `heads` [b, 1, hq + 2 hk, d] with k and v appended to the
  // cache, in one kernel; returns q [b, hq, d].
  Tensor rope_kv_write(const KvCache& cache, int64_t layer, const Tensor& heads,
                       const Tensor& start) const;
  // The same plus attention over the cache in one kernel (FLAGSTONE_ENGINE_ROPE_ATTENTION=1);
  // returns the attention output [b, hq, d].
  Tensor rope_attention(DecodeState& state, const KvCache& cache, int64_t layer,
                        const Tensor& heads) const;
  // The q/k/v product of the normed residual, rotary, the KV append and attention in one kernel
  // (state.qkv_attention); returns the attention output [1, hq, d]. Its setup for a new cache
  // sets state.qkv_attention where the kernel serves this model and device.
  Tensor qkv_attention(DecodeState& state, const KvCache& cache, int64_t layer,
                       const Tensor& residual);
  void setup_qkv_attention(DecodeState& state, const KvCache& cache);
  // Rotary, the KV append and attention of the step's q/k/v `heads` [b, 1, hq + 2 hk, d] for
  // `layer`, by the fused kernel where state.rope_attention says, else op by op; returns the
  // attention output [b, hq, d].
  Tensor step_attention(DecodeState& state, KvCache& cache, int64_t layer, const Tensor& heads);
#ifdef FLAGSTONE_HAVE_CUDA
  QkvAttentionArgs qkv_attention_args(DecodeState& state, const KvCache& cache, int64_t layer,
                                      const Tensor& residual);
  // The caches, tables and shapes both rotary kernels share; `start` holds the positions.
  void fill_rope_cache_args(RopeCacheArgs& args, const KvCache& cache, int64_t layer,
                            const Tensor& heads, const Tensor& start, int64_t batch) const;
  RopeAttentionArgs rope_attention_args(DecodeState& state, const KvCache& cache, int64_t layer,
                                        const Tensor& heads) const;
#endif

  ModelConfig config_;
  DecoderTraits traits_;
  ModelInfo info_;
  OpRunner ops_;
  Device device_;
  DType dtype_;
  int64_t hidden_, heads_, kv_heads_, head_dim_, intermediate_, vocab_;
  // Each layer's q/k/v weight with its rows by GQA group (the query heads of a group, then its
  // key, then its value), made for the qkv_attention kernel on its first use.
  std::vector<Tensor> qkv_by_group_;
  Tensor embed_, final_norm_, lm_head_;
  std::vector<Layer> layers_;
  Tensor rope_cos_, rope_sin_;  // [max_context, head_dim / 2]
  Tensor positions_;            // i64 [1, max_context]: 0, 1, 2, ... on the device
  bool graphs_ = true;
  bool describe_graph_ = false;
  DecodeState decode_;
  std::shared_ptr<runtime::AllocatorPool> graph_pool_;
};

}  // namespace flagstone::engine::detail
