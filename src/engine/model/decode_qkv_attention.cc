// The one-sequence decode step's q/k/v product, rotary, KV append and attention as one kernel of
// thread-block clusters (cuda/qkv_attention.cu): where it serves and how it is called.
#include <cmath>
#include <cstdlib>
#include <string>

#include "decoder.h"

#ifdef FLAGSTONE_HAVE_CUDA
#include "cuda/qkv_attention.h"
#endif

namespace flagstone::engine::detail {

void DecoderModel::setup_qkv_attention(DecodeState& s, const KvCache& cache) {
#ifdef FLAGSTONE_HAVE_CUDA
  info_.decode_qkv_attention = false;
  info_.decode_qkv_attention_note.clear();
  // Off unless FLAGSTONE_ENGINE_QKV_ATTENTION=1: on the H200 the step ran 0.988x as fast with it
  // (llama-1b tg128 1304.97 against 1319.55 / 1321.88 t/s, session 24; two blocks an SM, the
  // softmax states in the ring), though the kernel alone takes 15.0 µs against 9.7 + 9.1 for the
  // two it replaces: probably because a 16-block cluster starts only once 16 SMs of a GPC are free
  // of the down product's blocks, where the plain product's blocks start one by one.
  const char* env = std::getenv("FLAGSTONE_ENGINE_QKV_ATTENTION");
  if (!env || std::string(env) != "1") return;
  // It takes the place of the fused step's q/k/v product and rope_attention, so it needs both.
  if (!s.rope_attention || s.batch != 1 || fused_mode(1) != FusedMode::kAll) return;
  auto refuse = [&](const std::string& why) { info_.decode_qkv_attention_note = why; };
  // One block an SM streams it: for weights of at most 16 MiB (the 1B shape's), as the streamed
  // GEMV's plan does; larger ones stream faster from two blocks an SM in the plain product.
  for (const Layer& layer : layers_) {
    if (layer.qkv.nbytes() > (int64_t{16} << 20)) return;
    if (layer.qkv_bias.defined()) return refuse("q/k/v bias");
    if (layer.qkv.dtype() != dtype_ || !layer.qkv.is_contiguous() ||
        layer.input_norm.dtype() != dtype_)
      return refuse("weights not contiguous in the model's dtype");
  }
  Tensor probe = Tensor::empty({1, 1, hidden_}, dtype_, device_);
  const char* why = qkv_attention_refusal(qkv_attention_args(s, cache, 0, probe),
                                          static_cast<int>(dtype_size(dtype_)), device_.index());
  if (*why) return refuse(why);
  if (qkv_by_group_.empty()) {
    const int64_t d = head_dim_, g = heads_ / kv_heads_;
    for (const Layer& layer : layers_) {
      std::vector<Tensor> rows;
      for (int64_t h = 0; h < kv_heads_; ++h) {
        rows.push_back(layer.qkv.narrow(0, h * g * d, g * d));
        rows.push_back(layer.qkv.narrow(0, (heads_ + h) * d, d));
        rows.push_back(layer.qkv.narrow(0, (heads_ + kv_heads_ + h) * d, d));
      }
      qkv_by_group_.push_back(ops::cat(rows, 0));
    }
  }
  s.qkv_attention = true;
  info_.decode_qkv_attention = true;
#else
  (void)s, (void)cache;
#endif
}

Tensor DecoderModel::qkv_attention(DecodeState& s, const KvCache& cache, int64_t l,
                                   const Tensor& residual) {
  Tensor out = Tensor::empty({1, heads_, head_dim_}, dtype_, device_);
#ifdef FLAGSTONE_HAVE_CUDA
  QkvAttentionArgs a = qkv_attention_args(s, cache, l, residual);
  a.out = address_of(out);
  if (ops_.timer()) ops_.timer()->begin("qkv_attention (engine)");
  const char* error = launch_qkv_attention(a, dtype_ == DType::kBF16, device_.index(),
                                           device_.impl().default_stream().native_handle());
  if (ops_.timer()) ops_.timer()->end();
  FS_CHECK(*error == '\0', kBackend, "q/k/v product + rotary + attention on ", device_.spec(), ": ",
           error);
#else
  (void)s, (void)cache, (void)l, (void)residual;
#endif
  return out;
}

#ifdef FLAGSTONE_HAVE_CUDA
QkvAttentionArgs DecoderModel::qkv_attention_args(DecodeState& s, const KvCache& cache, int64_t l,
                                                  const Tensor& residual) {
  QkvAttentionArgs a;
  fill_rope_cache_args(a, cache, l, residual, s.step, 1);
  const Layer& layer = layers_[static_cast<size_t>(l)];
  a.x = address_of(residual);
  a.norm_weight = address_of(layer.input_norm);
  a.eps = static_cast<float>(config_.rms_norm_eps);
  a.w = qkv_by_group_.empty() ? address_of(layer.qkv) : address_of(qkv_by_group_[l]);
  a.hidden = hidden_;
  a.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim_)));
  return a;
}
#endif

}  // namespace flagstone::engine::detail
