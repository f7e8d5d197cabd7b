// Models for inference: load a Hugging Face folder or a GGUF file onto a device and run the
// forward pass over a KV cache; a float64 reference mode checks every other path.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "flagstone/engine/model/architecture.h"
#include "flagstone/engine/model/kv_cache.h"
#include "flagstone/engine/model_config.h"
#include "flagstone/engine/tokenizer/tokenizer.h"
#include "flagstone/runtime/tensor.h"

namespace flagstone::engine {

struct LoadProgress {
  std::string tensor;  // the tensor just moved to the device
  uint64_t bytes_done = 0;
  uint64_t bytes_total = 0;
  size_t tensors_done = 0;
  size_t tensors_total = 0;
};

struct ModelOptions {
  Device device;  // cpu by default
  // Activations and plain weights; default: f32 on cpu and OpenCL, the checkpoint's 16-bit type
  // (bf16 when it says nothing) on other accelerators.
  std::optional<DType> dtype;
  // The float64 reference: every weight upcast to f64 on the cpu and every op run by its
  // reference implementation. `device`, `dtype` and `keep_quantized` are ignored.
  bool reference = false;
  // GGUF q8_0/q4_0 matrices stay quantized (linear_quantized); false dequantizes at load.
  bool keep_quantized = true;
  // Longest sequence (rope tables, default cache size); 0: the config's
  // max_position_embeddings, capped at 8192 to keep caches small.
  int64_t max_context = 0;
  // On CUDA, a decode step (one new token per sequence) is recorded once as a CUDA graph and
  // replayed, so it costs one launch instead of one per kernel; false runs the same kernels one
  // by one (`--no-graph`). Other devices ignore it.
  bool graphs = true;
  // Read back what the recorded step holds (ModelInfo::decode_graph_nodes), for profiling.
  bool describe_graph = false;
  std::function<void(const LoadProgress&)> progress;
};

struct ModelInfo {
  std::string path;
  std::string format;        // "safetensors" or "gguf"
  std::string architecture;  // registry name
  Device device;
  DType dtype = DType::kF32;  // activations
  bool reference = false;
  int64_t parameters = 0;
  uint64_t weight_bytes = 0;  // on the device
  // What one decoded token reads: every matrix (and norm) once, plus one embedding row.
  uint64_t bytes_per_token = 0;
  // Parameters of the matrix products (projections and output head): each costs 2 FLOPs per
  // token; the embedding is a lookup and costs none.
  int64_t matmul_parameters = 0;
  int64_t max_context = 0;
  std::string weight_types;  // "q8_0 x 14, f32 x 9"
  // Decode steps run as one recorded graph (CUDA with ModelOptions::graphs), else op by op.
  bool decode_graph = false;
  // Why recording the decode step failed (the model then runs it op by op); empty otherwise.
  std::string decode_graph_error;
  // What the recorded step holds, e.g. "150 nodes: 150 kernels (gemv x 97, ...)", when
  // ModelOptions::describe_graph asked for it; empty until a step is recorded.
  std::string decode_graph_nodes;
  // The batch-1 decode step runs as one persistent kernel (CUDA, asked for with
  // FLAGSTONE_ENGINE_PERSISTENT=1; the per-product step is faster at every size measured); when
  // asked for but not possible, why.
  bool decode_persistent = false;
  std::string decode_persistent_note;
  // The one-sequence step's q/k/v product, rotary and attention run as one kernel of clusters
  // (CUDA sm_90, q/k/v weights of at most 16 MiB; asked for with FLAGSTONE_ENGINE_QKV_ATTENTION=1);
  // when asked for but not possible, why.
  bool decode_qkv_attention = false;
  std::string decode_qkv_attention_note;
};

// Device time of one op (or one kind of matrix product) over a profiled forward pass.
struct OpTime {
  std::string op;  // "rms_norm", "linear [3072, 2048]" (the weight's shape)
  int64_t calls = 0;
  double microseconds = 0;  // summed over the calls
  uint64_t bytes = 0;       // weight bytes read, summed (matrix products; else 0)
};

class Model {
 public:
  virtual ~Model() = default;
  virtual const ModelConfig& config() const = 0;
  virtual const ModelInfo& info() const = 0;

  // A cache for `batch` sequences of up to `capacity` positions (0: max_context) on the
  // model's device in its dtype.
  virtual KvCache new_cache(int64_t batch = 1, int64_t capacity = 0) const = 0;

  // Runs `tokens` [batch, count] (i64 or i32, any device) at positions cache.length() ..
  // cache.length() + count - 1 of every sequence, appending their keys and values to `cache`.
  // Returns logits [batch, count, vocab] when `all_logits`, else [batch, 1, vocab] of the last
  // position; in the model's dtype, on its device. The first decode step (count 1) on a new
  // cache records the step's graph (ModelOptions::graphs), which keeps pointers to `cache`'s
  // storage; a different cache records again.
  virtual Tensor forward(const Tensor& tokens, KvCache& cache, bool all_logits = false) = 0;

  // Greedy decoding: forward() of `tokens` [batch, count] and each sequence's most likely next
  // id (the lowest on ties), i64 [batch, 1] on the model's device, with nothing synchronized.
  // On a recorded CUDA decode step the argmax runs inside the graph and the ids live in the
  // step's input buffer: valid until the next call, and passing them back as `tokens` costs no
  // copy, so a caller can queue the next step before reading this one's ids.
  virtual Tensor forward_greedy(const Tensor& tokens, KvCache& cache);

  // The ids of the latest step on `cache` (one i64 per sequence: forward_greedy's, or the
  // argmax of a one-token forward()'s logits) as the device wrote them into page-locked host
  // memory, or null where it did not (then copy the tensor forward_greedy returned). Readable once
  // that step's work is done (an event recorded after the call) and until three more steps have
  // been queued, so a loop can queue the next step before reading, with no copy on the stream
  // between steps.
  virtual const int64_t* greedy_host_ids(const KvCache& cache) const {
    (void)cache;
    return nullptr;
  }

  // forward() op by op (never a replayed graph) with each op's device time taken by events
  // around the call, in order of first use; the cache advances as in forward(). For seeing
  // where a step's time goes: the sum against the measured step time is the launch overhead.
  // Empty for the float64 reference.
  virtual std::vector<OpTime> profile_forward(const Tensor& tokens, KvCache& cache) {
    (void)tokens, (void)cache;
    return {};
  }
};

// Loads a model folder (config.json + safetensors) or a .gguf file. Errors name the file and
// the tensor or key at fault.
std::unique_ptr<Model> load_model(const std::string& path, const ModelOptions& options = {});
// True when `path` names a GGUF file (by its magic, whatever its extension).
bool is_gguf_file(const std::string& path);
// The tokenizer of a model folder (tokenizer.json) or of a GGUF file's vocabulary.
Tokenizer load_model_tokenizer(const std::string& path);

}  // namespace flagstone::engine
