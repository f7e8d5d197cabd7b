// The device decode step: token ids, positions and lengths live in device buffers that the
// kernels read (rotary, the KV append, paged attention), so the step records once as a graph and
// replays for every later token; without graphs the same kernels run one by one.
#include "decoder.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>

#ifdef FLAGSTONE_HAVE_CUDA
#include "cuda/graph_nodes.h"
#include "cuda/kv_cache_write.h"
#endif

namespace flagstone::engine {

Tensor Model::forward_greedy(const Tensor& tokens, KvCache& cache) {
  Tensor logits = forward(tokens, cache);
  return ops::argmax(logits.reshape({logits.size(0), logits.size(2)}), 1, true);
}

}  // namespace flagstone::engine

namespace flagstone::engine::detail {
namespace {

#ifdef FLAGSTONE_HAVE_CUDA
// FLAGSTONE_ENGINE_ARGMAX=ops: the step's greedy pick by the ops library's argmax (the engine's
// many-block kernel otherwise), for comparing both in one run.
bool ops_argmax() {
  static const bool ops = [] {
    const char* env = std::getenv("FLAGSTONE_ENGINE_ARGMAX");
    return env && std::string(env) == "ops";
  }();
  return ops;
}
#endif

// FLAGSTONE_ENGINE_HEAD_PICK=0: the greedy pick as a kernel of its own after the head, not made
// by the head's streamed GEMV as it ends (the default where it serves), for comparing both.
// Read at each recording.
bool head_pick() {
#ifdef FLAGSTONE_HAVE_CUDA
  const char* env = std::getenv("FLAGSTONE_ENGINE_HEAD_PICK");
  return !(env && std::string(env) == "0") && !ops_argmax();
#else
  return false;
#endif
}

std::vector<void*> storage_of(const KvCache& cache) {
  std::vector<void*> out;
  for (int64_t l = 0; l < cache.layers(); ++l) {
    out.push_back(address_of(cache.keys(l)));
    out.push_back(address_of(cache.values(l)));
  }
  return out;
}

}  // namespace

bool DecoderModel::decode_on_device(const KvCache& cache) const {
#ifdef FLAGSTONE_HAVE_CUDA
  if (ops_.reference() || device_.backend() != "cuda") return false;
  // Paged attention has no mask: a sliding window must cover the whole cache.
  return !traits_.sliding_window || cache.capacity() <= *traits_.sliding_window;
#else
  (void)cache;
  return false;
#endif
}

void DecoderModel::write_kv(const KvCache& cache, int64_t l, const Tensor& k, const Tensor& v,
                            const Tensor& start) const {
#ifdef FLAGSTONE_HAVE_CUDA
  const Tensor &keys = cache.keys(l), &values = cache.values(l);
  const auto es = static_cast<int64_t>(dtype_size(dtype_));
  KvWriteArgs a;
  const Tensor* sources[2] = {&k, &v};
  for (int i = 0; i < 2; ++i) {
    const Tensor& src = *sources[i];
    FS_ASSERT(src.dim() == 4 && src.stride(3) == 1 && src.stride(2) == head_dim_);
    a.src[i] = address_of(src);
    a.src_batch[i] = src.stride(0) * es;
    a.src_token[i] = src.stride(1) * es;
  }
  a.dst[0] = address_of(keys);
  a.dst[1] = address_of(values);
  a.dst_batch = keys.stride(0) * es;
  a.dst_token = keys.stride(1) * es;
  a.row_bytes = kv_heads_ * head_dim_ * es;
  a.start = static_cast<const int64_t*>(address_of(start));
  a.batch = k.size(0);
  a.tokens = k.size(1);
  const char* error =
      launch_kv_cache_write(a, device_.index(), device_.impl().default_stream().native_handle());
  FS_CHECK(*error == '\0', kBackend, "KV cache append on ", device_.spec(), ": ", error);
#else
  (void)cache, (void)l, (void)k, (void)v, (void)start;
  throw_error(ErrorCategory::kInternal, "device decode step without a CUDA build");
#endif
}

Tensor DecoderModel::rope_kv_write(const KvCache& cache, int64_t l, const Tensor& heads,
                                   const Tensor& start) const {
  const int64_t b = heads.size(0);
  Tensor q = Tensor::empty({b, heads_, head_dim_}, dtype_, device_);
#ifdef FLAGSTONE_HAVE_CUDA
  FS_ASSERT(heads.dim() == 4 && heads.stride(3) == 1 && heads.stride(2) == head_dim_);
  FS_ASSERT(rope_cos_.is_contiguous() && rope_cos_.dtype() == dtype_);
  RopeKvArgs a;
  fill_rope_cache_args(a, cache, l, heads, start, b);
  a.q_out = address_of(q);
  const char* error =
      launch_rope_kv_write(a, static_cast<int>(dtype_size(dtype_)), dtype_ == DType::kBF16,
                           device_.index(), device_.impl().default_stream().native_handle());
  FS_CHECK(*error == '\0', kBackend, "rotary + KV cache append on ", device_.spec(), ": ", error);
#else
  (void)cache, (void)l, (void)start;
  throw_error(ErrorCategory::kInternal, "device decode step without a CUDA build");
#endif
  return q;
}

Tensor DecoderModel::rope_attention(DecodeState& s, const KvCache& cache, int64_t l,
                                    const Tensor& heads) const {
  const int64_t b = heads.size(0);
  Tensor out = Tensor::empty({b, heads_, head_dim_}, dtype_, device_);
#ifdef FLAGSTONE_HAVE_CUDA
  RopeAttentionArgs a = rope_attention_args(s, cache, l, heads);
  a.out = address_of(out);
  const char* error = launch_rope_attention(a, dtype_ == DType::kBF16, device_.index(),
                                            device_.impl().default_stream().native_handle());
  FS_CHECK(*error == '\0', kBackend, "fused rotary + attention on ", device_.spec(), ": ", error);
#else
  (void)s, (void)cache, (void)l;
#endif
  return out;
}

#ifdef FLAGSTONE_HAVE_CUDA
void DecoderModel::fill_rope_cache_args(RopeCacheArgs& a, const KvCache& cache, int64_t l,
                                        const Tensor& heads, const Tensor& start,
                                        int64_t batch) const {
  a.heads = address_of(heads);
  a.heads_batch = heads.stride(0);
  a.k_cache = address_of(cache.keys(l));
  a.v_cache = address_of(cache.values(l));
  a.capacity = cache.capacity();
  a.cos = address_of(rope_cos_);
  a.sin = address_of(rope_sin_);
  a.max_positions = rope_cos_.size(0);
  a.start = static_cast<const int64_t*>(address_of(start));
  a.batch = batch, a.q_heads = heads_, a.kv_heads = kv_heads_, a.head_dim = head_dim_;
  a.neox = traits_.rope_style == "neox";
}

RopeAttentionArgs DecoderModel::rope_attention_args(DecodeState& s, const KvCache& cache, int64_t l,
                                                    const Tensor& heads) const {
  RopeAttentionArgs a;
  fill_rope_cache_args(a, cache, l, heads, s.step, s.batch);
  a.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim_)));
  a.splits = rope_attention_splits(a, device_.info().compute_units);
  // FLAGSTONE_ENGINE_ATTN_SPLITS=n launches n splits per group instead (for sweeps: llama-1b at
  // depth 512 ran 1.006x with 2 instead of 11, llama-8b and depth 4096 slower with fewer; H200,
  // session 24).
  if (const char* v = std::getenv("FLAGSTONE_ENGINE_ATTN_SPLITS"); v && std::atoi(v) > 0)
    a.splits = std::min<int64_t>(std::atoi(v), 120);
  a.cluster = s.attn_cluster;
  if (s.attn_scratch.defined()) {
    a.partials = static_cast<float*>(address_of(s.attn_scratch));
    a.counters = reinterpret_cast<unsigned*>(a.partials + s.batch * heads_ * 128 * (2 + head_dim_));
  }
  return a;
}
#endif

DecoderModel::DecodeState& DecoderModel::decode_state(const KvCache& cache) {
  DecodeState& s = decode_;
  std::vector<void*> storage = storage_of(cache);
  if (s.batch == cache.batch() && s.storage == storage) return s;
  // A new cache (or the first step): new input buffers and, on first use, a new recording.
  s = DecodeState();
  s.batch = cache.batch();
  s.storage = std::move(storage);
  s.tokens = Tensor::empty({s.batch, 1}, DType::kI64, device_);
  s.step = Tensor::empty({2 * s.batch}, DType::kI64, device_);
  s.block_table = ops::arange(s.batch, device_).reshape({s.batch, 1});
#ifdef FLAGSTONE_HAVE_CUDA
  // Picks of kGreedyPickBytes (two i64) per block, then one ticket per row; all zero at first.
  s.pick_scratch =
      Tensor::empty({s.batch * kGreedyScratchPicks * 2 + s.batch}, DType::kI64, device_);
  s.pick_scratch.fill_bytes_(0);
  s.host_ids = runtime::PinnedHostBuffer(device_, kGreedyHostSlots * s.batch * sizeof(int64_t));
  if (s.host_ids.is_pinned())
    s.host_ids_device = host_ids_on_device(s.host_ids.data(), device_.index());
  // The fused rotary + KV append + attention kernel where it serves this model (the default;
  // FLAGSTONE_ENGINE_ROPE_ATTENTION=0 keeps rope_kv_write then paged_attention, for A/B).
  const char* fused = std::getenv("FLAGSTONE_ENGINE_ROPE_ATTENTION");
  if (!(fused && std::string(fused) == "0") && !traits_.qk_norm && rope_cos_.dtype() == dtype_ &&
      rope_cos_.is_contiguous()) {
    Tensor probe = Tensor::empty({s.batch, heads_ + 2 * kv_heads_, head_dim_}, dtype_, device_);
    const RopeAttentionArgs args = rope_attention_args(s, cache, 0, probe);
    if (rope_attention_supported(args, static_cast<int>(dtype_size(dtype_)))) {
      const int64_t floats = s.batch * heads_ * 128 * (2 + head_dim_) + s.batch * kv_heads_;
      s.attn_scratch = Tensor::empty({floats}, DType::kF32, device_);
      s.attn_scratch.fill_bytes_(0);
      s.rope_attention = true;
      // The split count is the cache's, the same for every layer: one decision for the step.
      s.attn_cluster = rope_attention_clusters(args, device_.index());
    }
  }
  setup_qkv_attention(s, cache);
  if (persistent_wanted()) setup_persistent(s, cache);
#endif
  return s;
}

Tensor DecoderModel::step_attention(DecodeState& s, KvCache& cache, int64_t l,
                                    const Tensor& heads) {
  if (s.rope_attention) {
    // Rotary, the KV append and attention in one engine kernel (the default).
    if (ops_.timer()) ops_.timer()->begin("rope_attention (engine)");
    Tensor attn = rope_attention(s, cache, l, heads);
    if (ops_.timer()) ops_.timer()->end();
    return attn;
  }
  const int64_t b = s.batch, d = head_dim_, hq = heads_, hk = kv_heads_;
  const Tensor start = s.step.narrow(0, 0, b);
  Tensor q;
  if (traits_.qk_norm) {
    // q/k norms sit between the projection and rotary: the ops one by one.
    const Layer& layer = layers_[static_cast<size_t>(l)];
    const Tensor positions = start.view({b, 1});
    q = ops_.rms_norm(heads.narrow(2, 0, hq), layer.q_norm, config_.rms_norm_eps);
    Tensor k = ops_.rms_norm(heads.narrow(2, hq, hk), layer.k_norm, config_.rms_norm_eps);
    q = ops_.rotary(q, positions, rope_cos_, rope_sin_, traits_.rope_style);
    k = ops_.rotary(k, positions, rope_cos_, rope_sin_, traits_.rope_style);
    if (ops_.timer()) ops_.timer()->begin("kv_cache_write");
    write_kv(cache, l, k, heads.narrow(2, hq + hk, hk), start);
    if (ops_.timer()) ops_.timer()->end();
  } else {
    // One kernel turns q and k, appends k and v to the cache and leaves q for attention.
    if (ops_.timer()) ops_.timer()->begin("rope_kv_write (engine)");
    q = rope_kv_write(cache, l, heads, start);
    if (ops_.timer()) ops_.timer()->end();
  }
  return ops_.paged_attention(q.reshape({b, hq, d}), cache.keys(l), cache.values(l), s.block_table,
                              s.step.narrow(0, b, b));
}

Tensor DecoderModel::decode_body(DecodeState& s, KvCache& cache) {
  if (s.mega) return pick_next(s, persistent_step(s));
  const int64_t b = s.batch, d = head_dim_, hq = heads_, hk = kv_heads_;
  // Fused: each product takes the norm or silu * up before it and the residual add after it, so
  // the residual stream is updated in place and no norm or activation runs on its own.
  const FusedMode fused = s.batch <= kMaxFusedRows ? fused_mode(s.batch) : FusedMode::kOff;
  // One row fused: the first product looks its input row up itself and starts the residual
  // stream, so the step has no embedding kernel.
  const bool gather =
      fused != FusedMode::kOff && !s.qkv_attention && gathers_embedding(layers_.front(), b);
  Tensor x = gather ? Tensor::empty({b, 1, embed_.size(1)}, dtype_, device_)
                    : ops_.embedding(s.tokens, embed_);
  Tensor residual = x, h, mlp_out;
  for (int64_t l = 0; l < static_cast<int64_t>(layers_.size()); ++l) {
    const Layer& layer = layers_[l];
    // One row on sm_90: the activation rides on the gate/up product, down takes it plain.
    const bool silu_after = fused != FusedMode::kOff && silu_after_gate_up(layer, b);
    Tensor attn;
    if (s.qkv_attention) {
      // The q/k/v product (normed in front), rotary, KV append and attention in one kernel.
      attn = qkv_attention(s, cache, l, residual);
    } else {
      Tensor heads;
      if (gather && l == 0) {
        heads = step_linear(embed_, layer.qkv, layer.qkv_bias, StepPrologue::kRmsNorm,
                            layer.input_norm, {}, {.gather_ids = &s.tokens, .gathered = residual});
      } else if (fused != FusedMode::kOff) {
        heads = step_linear(residual, layer.qkv, layer.qkv_bias, StepPrologue::kRmsNorm,
                            layer.input_norm, {});
      } else {
        if (l == 0) {
          h = ops_.rms_norm(x, layer.input_norm, config_.rms_norm_eps);
        } else {
          std::tie(h, residual) =
              ops_.add_rms_norm(mlp_out, residual, layer.input_norm, config_.rms_norm_eps);
        }
        heads = step_product(h, layer.qkv, layer.qkv_bias);
      }
      attn = step_attention(s, cache, l, heads.view({b, 1, hq + 2 * hk, d}));
    }
    if (fused != FusedMode::kOff) {
      residual =
          step_linear(attn.reshape({b, 1, hq * d}), layer.o, {}, StepPrologue::kNone, {}, residual);
      if (silu_after) {
        Tensor act = step_linear(residual, layer.gate_up, {}, StepPrologue::kRmsNorm,
                                 layer.post_norm, {}, {.silu_after = true});
        residual = step_linear(act, layer.down, {}, StepPrologue::kNone, {}, residual);
        continue;
      }
      Tensor gate_up =
          step_linear(residual, layer.gate_up, {}, StepPrologue::kRmsNorm, layer.post_norm, {});
      residual = step_linear(gate_up, layer.down, {}, StepPrologue::kSiluMul, {}, residual);
      continue;
    }
    attn = step_product(attn.reshape({b, 1, hq * d}), layer.o);
    std::tie(h, residual) =
        ops_.add_rms_norm(attn, residual, layer.post_norm, config_.rms_norm_eps);
    mlp_out = step_product(ops_.silu_and_mul(step_product(h, layer.gate_up)), layer.down);
  }
  Tensor logits;
  bool head_picked = false;
  if (fused == FusedMode::kAll) {
    logits = step_linear(residual, lm_head_, {}, StepPrologue::kRmsNorm, final_norm_, {},
                         {.pick_into = head_pick() ? &s : nullptr, .picked = &head_picked});
  } else {
    h = fused != FusedMode::kOff
            ? ops_.rms_norm(residual, final_norm_, config_.rms_norm_eps)
            : ops_.add_rms_norm(mlp_out, residual, final_norm_, config_.rms_norm_eps).first;
    logits = step_product(h, lm_head_);
  }
  return head_picked ? logits : pick_next(s, logits);
}

Tensor DecoderModel::pick_next(DecodeState& s, const Tensor& logits) {
  // The greedy pick becomes the next step's input, and the positions move on, on the device:
  // a greedy loop replays step after step with nothing uploaded in between.
#ifdef FLAGSTONE_HAVE_CUDA
  const int64_t b = s.batch;
  void* stream = device_.impl().default_stream().native_handle();
  if (ops_argmax()) {
    // FLAGSTONE_ENGINE_ARGMAX=ops: the ops library's argmax, then a kernel to advance.
    if (ops_.timer()) ops_.timer()->begin("argmax + advance");
    std::vector<Tensor> ids{s.tokens};
    ops::call_out("argmax", {logits.reshape({b, vocab_})}, {{"dim", int64_t{1}}, {"keepdim", true}},
                  ids);
    const char* error = launch_advance_step(static_cast<int64_t*>(address_of(s.step)), 2 * b,
                                            device_.index(), stream);
    FS_CHECK(*error == '\0', kBackend, "decode step advance on ", device_.spec(), ": ", error);
  } else {
    if (ops_.timer()) ops_.timer()->begin("greedy pick + advance (engine)");
    FS_ASSERT(logits.is_contiguous() && logits.dtype() == dtype_);
    GreedyArgs g;
    g.logits = address_of(logits);
    g.rows = b, g.n = vocab_, g.row_stride = vocab_;
    g.out = static_cast<int64_t*>(address_of(s.tokens));
    g.step = static_cast<int64_t*>(address_of(s.step));
    g.scratch = address_of(s.pick_scratch);
    g.counters =
        reinterpret_cast<unsigned*>(static_cast<int64_t*>(g.scratch) + b * kGreedyScratchPicks * 2);
    g.host_ids = s.host_ids_device;
    const char* error = launch_greedy_pick(g, static_cast<int>(dtype_size(dtype_)),
                                           dtype_ == DType::kBF16, device_.index(), stream);
    FS_CHECK(*error == '\0', kBackend, "greedy pick on ", device_.spec(), ": ", error);
  }
  if (ops_.timer()) ops_.timer()->end();
#else
  (void)s;
#endif
  return logits;
}

Tensor DecoderModel::forward_greedy(const Tensor& tokens, KvCache& cache) {
  check_forward(tokens, cache);
  if (tokens.size(1) == 1 && decode_on_device(cache)) return decode(tokens, cache, true);
  return Model::forward_greedy(tokens, cache);
}

const int64_t* DecoderModel::greedy_host_ids(const KvCache& cache) const {
#ifndef FLAGSTONE_HAVE_CUDA
  (void)cache;
  return nullptr;
#else
  // The latest decode step ran at position step_start - 1; unless the ops library's argmax
  // picked (it has no host slots), it wrote its ids there, in every step, greedy or not.
  const DecodeState& s = decode_;
  if (!s.host_ids_device || ops_argmax() || s.step_start < 1 || s.step_start != cache.length() ||
      s.batch != cache.batch() || s.storage != storage_of(cache))
    return nullptr;
  return static_cast<const int64_t*>(s.host_ids.data()) +
         (s.step_start - 1) % kGreedyHostSlots * s.batch;
#endif
}

Tensor DecoderModel::decode(const Tensor& tokens_in, KvCache& cache, bool greedy) {
  const int64_t b = tokens_in.size(0), start = cache.length();
  DecodeState& s = decode_state(cache);
  // This step's inputs: the ids (a device copy when they come from the sampler; none when they
  // are the previous greedy step's, already in place) and each sequence's position and length
  // (uploaded only when the last step did not leave them at this position).
  const bool in_place = tokens_in.buffer().handle() == s.tokens.buffer().handle() &&
                        tokens_in.byte_offset() == s.tokens.byte_offset() &&
                        tokens_in.dtype() == DType::kI64 && tokens_in.is_contiguous();
  if (!in_place) {
    Tensor tokens =
        tokens_in.dtype() == DType::kI64 ? tokens_in : ops::cast(tokens_in, DType::kI64);
    s.tokens.copy_(tokens.device() == device_ ? tokens : tokens.to(device_));
  }
  if (s.step_start != start) {
    std::vector<int64_t> step(static_cast<size_t>(2 * b));
    for (int64_t i = 0; i < b; ++i) {
      step[i] = start;
      step[b + i] = start + 1;
    }
    s.step.copy_from_host(step.data(), step.size() * sizeof(int64_t));
  }

  Tensor logits;
  if (s.graph.defined() && !ops_.timer()) {
    s.graph.replay();
    // A copy, so logits a caller keeps are not overwritten by the next replay.
    if (!greedy) logits = s.logits.clone();
  } else {
    // Eager (also the warm-up before recording: library handles and scratch get made here,
    // outside the capture).
    logits = decode_body(s, cache);
    // The persistent step writes its own buffer, which the next step overwrites.
    if (s.mega && !greedy) logits = logits.clone();
    if (graphs_ && !ops_.timer() && !s.graph.defined() && runtime::Graph::supported(device_)) {
      if (!graph_pool_) graph_pool_ = device_.allocator().create_pool();
      try {
        s.graph = runtime::Graph::capture(
            device_,
            [&] {
              s.logits = decode_body(s, cache);
#ifdef FLAGSTONE_HAVE_CUDA
              if (describe_graph_)
                info_.decode_graph_nodes =
                    describe_capture(device_.impl().default_stream().native_handle());
#endif
            },
            graph_pool_);
      } catch (const Error& e) {
        // An op that cannot be recorded (one that synchronizes, say) keeps this model op by op:
        // slower, never wrong. The reason stays in info() for `bench model` and `run -v`.
        graphs_ = false;
        info_.decode_graph = false;
        info_.decode_graph_error = e.what();
        s.graph = runtime::Graph();
        s.logits = Tensor();
      }
    }
  }
  s.step_start = start + 1;
  cache.advance(1);
  return greedy ? s.tokens : logits;
}

std::vector<OpTime> DecoderModel::profile_forward(const Tensor& tokens, KvCache& cache) {
  if (ops_.reference()) return {};
  OpTimer timer{device_, {}};
#ifdef FLAGSTONE_HAVE_CUDA
  if (device_.backend() == "cuda") {
    // The step queues behind a spin long enough for the host to issue all of it, so each op's
    // events time its kernels back to back, not the host's dispatch in between.
    const char* error = launch_device_delay(device_.index(),
                                            device_.impl().default_stream().native_handle(), 50000);
    FS_CHECK(*error == '\0', kBackend, "profile delay on ", device_.spec(), ": ", error);
  }
#endif
  ops_.set_timer(&timer);
  try {
    forward(tokens, cache, false);
  } catch (...) {
    ops_.set_timer(nullptr);
    throw;
  }
  ops_.set_timer(nullptr);
  device_.synchronize();
  std::vector<OpTime> out;
  for (const OpTimer::Span& span : timer.spans) {
    auto it =
        std::find_if(out.begin(), out.end(), [&](const OpTime& t) { return t.op == span.op; });
    if (it == out.end()) it = out.insert(out.end(), OpTime{span.op, 0, 0, 0});
    ++it->calls;
    it->bytes += span.bytes;
    it->microseconds += 1000.0 * span.start.elapsed_ms(span.end);
  }
  return out;
}

}  // namespace flagstone::engine::detail
