// The decode step as one persistent kernel (cuda/decode_megakernel.cu) where the model and the
// device allow it: batch 1, f16/bf16 weights in the step's dtype, no q/k/v bias or q/k norm,
// head dims 64 and 128. Everything else keeps the kernel-per-op step.
#include <cmath>
#include <cstdlib>
#include <string>

#include "decoder.h"

#ifdef FLAGSTONE_HAVE_CUDA
#include "cuda/decode_megakernel.h"
#endif

namespace flagstone::engine::detail {
namespace {

#ifdef FLAGSTONE_HAVE_CUDA
// Why `t` cannot be streamed by the kernel's bulk copies (dtype, layout, alignment), or "".
std::string unfit(const Tensor& t, DType dtype, const char* name) {
  if (!t.defined()) return std::string(name) + " missing";
  if (t.dtype() != dtype)
    return std::string(name) + " stored as " + std::string(dtype_name(t.dtype()));
  if (!t.is_contiguous()) return std::string(name) + " not contiguous";
  if (reinterpret_cast<uintptr_t>(address_of(t)) % 16) return std::string(name) + " unaligned";
  return "";
}
#endif

}  // namespace

// Whether a batch-1 step tries the persistent kernel: only when FLAGSTONE_ENGINE_PERSISTENT=1
// (=0 or unset: the kernel-per-op step); read when a step is set up, so a test can compare both.
// It was the default from a hidden size of 4096 (session 17, H200: the 8B shape at 1.09x the
// kernel-per-op step) until the kernel-per-op step's products took the streamed GEMV (session
// 20, H200: the 8B shape op by op 255.0 against 251.7 t/s persistent, 235.1 against 227.2 at
// depth 4096; the 1B shape was faster op by op already; docs/performance.md).
bool DecoderModel::persistent_wanted() const {
  const char* env = std::getenv("FLAGSTONE_ENGINE_PERSISTENT");
  return env && std::string(env) == "1";
}

void DecoderModel::setup_persistent(DecodeState& s, const KvCache& cache) {
#ifdef FLAGSTONE_HAVE_CUDA
  std::string why;
  if (s.batch != 1) why = "batch " + std::to_string(s.batch);
  if (why.empty() && dtype_ != DType::kBF16 && dtype_ != DType::kF16)
    why = "dtype " + std::string(dtype_name(dtype_));
  if (why.empty() && (traits_.attention_bias || traits_.qk_norm)) why = "q/k/v bias or q/k norm";
  if (why.empty() && (rope_cos_.dtype() != dtype_ || !rope_cos_.is_contiguous()))
    why = "rotary tables";
  for (size_t l = 0; why.empty() && l < layers_.size(); ++l) {
    const Layer& y = layers_[l];
    for (auto [t, name] : {std::pair{&y.qkv, "qkv"},
                           {&y.o, "o"},
                           {&y.gate_up, "gate_up"},
                           {&y.down, "down"},
                           {&y.input_norm, "input_norm"},
                           {&y.post_norm, "post_norm"}})
      if (why.empty()) why = unfit(*t, dtype_, name);
  }
  if (why.empty()) why = unfit(embed_, dtype_, "embedding");
  if (why.empty()) why = unfit(lm_head_, dtype_, "output head");
  if (why.empty()) why = unfit(final_norm_, dtype_, "final norm");
  MegaArgs m;
  if (why.empty()) {
    m.layer_count = static_cast<int>(layers_.size());
    m.hidden = hidden_, m.q_heads = heads_, m.kv_heads = kv_heads_, m.head_dim = head_dim_;
    m.intermediate = intermediate_, m.vocab = vocab_;
    m.eps = static_cast<float>(config_.rms_norm_eps);
    m.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim_)));
    m.neox = traits_.rope_style == "neox";
    m.max_positions = rope_cos_.size(0);
    m.capacity = cache.capacity();
    if (const char* trace = std::getenv("FLAGSTONE_ENGINE_PERSISTENT_TRACE"); trace && *trace)
      m.trace_position = std::atoll(trace);
    why = plan_decode_megakernel(m, dtype_ == DType::kBF16, device_.index());
  }
  info_.decode_persistent = why.empty();
  info_.decode_persistent_note = why;
  if (!why.empty()) return;

  // The layer table the kernel walks, on the device.
  std::vector<MegaLayer> table(layers_.size());
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer& y = layers_[l];
    table[l] = MegaLayer{address_of(y.qkv),
                         address_of(y.o),
                         address_of(y.gate_up),
                         address_of(y.down),
                         address_of(y.input_norm),
                         address_of(y.post_norm),
                         address_of(cache.keys(static_cast<int64_t>(l))),
                         address_of(cache.values(static_cast<int64_t>(l)))};
  }
  static_assert(sizeof(MegaLayer) % sizeof(int64_t) == 0);
  s.mega_table =
      Tensor::empty({static_cast<int64_t>(table.size() * sizeof(MegaLayer) / sizeof(int64_t))},
                    DType::kI64, device_);
  s.mega_table.copy_from_host(table.data(), table.size() * sizeof(MegaLayer));
  // Activations (each a multiple of 8 elements, so every buffer starts 16-byte aligned).
  const int64_t qkv_rows = (heads_ + 2 * kv_heads_) * head_dim_, attn = heads_ * head_dim_;
  s.mega_acts = Tensor::empty({hidden_ + qkv_rows + attn + intermediate_}, dtype_, device_);
  s.logits = Tensor::empty({1, 1, vocab_}, dtype_, device_);
  const int64_t partials = heads_ * m.splits * (head_dim_ + 2);
  s.mega_scratch = Tensor::empty({partials + kv_heads_ + 4}, DType::kF32, device_);
  s.mega_scratch.fill_bytes_(0);
  const auto es = static_cast<int64_t>(dtype_size(dtype_));
  char* acts = static_cast<char*>(address_of(s.mega_acts));
  m.layers = static_cast<const MegaLayer*>(address_of(s.mega_table));
  m.embed = address_of(embed_), m.final_norm = address_of(final_norm_);
  m.head = address_of(lm_head_);
  m.token = static_cast<const int64_t*>(address_of(s.tokens));
  m.step = static_cast<const int64_t*>(address_of(s.step));
  m.cos = address_of(rope_cos_), m.sin = address_of(rope_sin_);
  m.residual = acts;
  m.qkv_out = acts + hidden_ * es;
  m.attn_out = acts + (hidden_ + qkv_rows) * es;
  m.act = acts + (hidden_ + qkv_rows + attn) * es;
  m.logits = address_of(s.logits);
  m.partials = static_cast<float*>(address_of(s.mega_scratch));
  m.tickets = reinterpret_cast<unsigned*>(m.partials + partials);
  m.barrier = m.tickets + kv_heads_;
  s.mega = std::make_shared<MegaArgs>(m);
#else
  (void)s, (void)cache;
#endif
}

Tensor DecoderModel::persistent_step(DecodeState& s) {
#ifdef FLAGSTONE_HAVE_CUDA
  if (ops_.timer()) ops_.timer()->begin("decode step (persistent kernel)", info_.bytes_per_token);
  const char* error = launch_decode_megakernel(*s.mega, dtype_ == DType::kBF16, device_.index(),
                                               device_.impl().default_stream().native_handle());
  FS_CHECK(*error == '\0', kBackend, "persistent decode step on ", device_.spec(), ": ", error);
  if (ops_.timer()) ops_.timer()->end();
#endif
  return s.logits;
}

}  // namespace flagstone::engine::detail
