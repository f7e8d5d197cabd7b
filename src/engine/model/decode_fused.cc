// The decode step's matrix products: the streamed GEMV (one row, sm_90) or the register GEMV with
// its weights loaded early, and the fused form (the default for one row on sm_90, opt-in
// elsewhere) in which each one-token linear takes the norm in front of it and the residual add or
// silu * up behind it (the GEMVs of src/ops/cuda/gemv.cu and gemv_stream.cu), so a layer runs
// five kernels instead of eight. Any call the fused GEMVs refuse runs the same ops unfused.
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "decoder.h"

#ifdef FLAGSTONE_HAVE_CUDA
#include "cuda/gemv.h"
#include "cuda/kv_cache_write.h"
#endif

namespace flagstone::engine::detail {
namespace {

#ifdef FLAGSTONE_HAVE_CUDA
// Whether the device's memory is slow enough (theoretical peak under 4 TB/s) that the step's
// wide products run faster on the early GEMV than on cuBLAS (measured: H100 yes, H200 no).
bool wide_products_on_gemv(int device) {
  static std::atomic<int> cached[64];  // 0 unknown, 1 no, 2 yes
  if (device < 0 || device >= 64) return false;
  int c = cached[device].load(std::memory_order_relaxed);
  if (c == 0) {
    int khz = 0, bits = 0;
    const bool known =
        cudaDeviceGetAttribute(&khz, cudaDevAttrMemoryClockRate, device) == cudaSuccess &&
        cudaDeviceGetAttribute(&bits, cudaDevAttrGlobalMemoryBusWidth, device) == cudaSuccess &&
        khz > 0 && bits > 0;
    const double bytes_per_second = 2.0 * khz * 1e3 * bits / 8;  // double data rate
    c = known && bytes_per_second < 4e12 ? 2 : 1;
    cached[device].store(c, std::memory_order_relaxed);
  }
  return c == 2;
}

// Runs `launch` on the device's stream with that device current; a failure names `what`.
template <typename F>
void launch_checked(const Device& device, const std::string& what, F launch) {
  const char* error = use_cuda_device(device.index());
  FS_CHECK(*error == '\0', kBackend, what, " on ", device.spec(), ": ", error);
  const cudaError_t status =
      launch(static_cast<cudaStream_t>(device.impl().default_stream().native_handle()));
  FS_CHECK(status == cudaSuccess, kBackend, what, " on ", device.spec(), ": ",
           cudaGetErrorString(status));
}

// Which one-row products of a step take the streamed GEMV (src/ops/cuda/gemv_stream.cu, sm_90;
// refused elsewhere): FLAGSTONE_ENGINE_STREAM=all (the default: every product, the head too),
// =wide (down and gate/up), =down (inputs wider than outputs), =0 none (the register GEMV and
// cuBLAS as before; FLAGSTONE_ENGINE_STEP_GEMV=0 also turns it off). On the H200 every product
// streamed ran llama-1b decode 1.05-1.07x faster. Read at each recording (not per replay), so a
// test can compare both paths in one process.
std::string stream_mode() {
  const char* env = std::getenv("FLAGSTONE_ENGINE_STREAM");
  return env && *env ? env : "all";
}

// Whether the streamed GEMV takes the product `a` on `device` (unless FLAGSTONE_ENGINE_STREAM=0;
// asked on the model's device, which the refusal and the launch plan query).
bool streamed_takes(const Device& device, DType dtype, const ops::cuda::FusedGemvArgs& a) {
  return stream_mode() != "0" && *use_cuda_device(device.index()) == '\0' &&
         *ops::cuda::streamed_gemv_refusal(dtype, a) == '\0';
}

// Whether the streamed GEMV serves one row by `weight` on `device`, normed by `norm` in front
// when defined, with the silu epilogue when asked, and with its input row looked up in `table`
// when defined (what the step's fused products need).
bool streamed_serves(const Device& device, DType dtype, const Tensor& weight, const Tensor& norm,
                     bool silu_after, const Tensor& table = {}) {
  if (weight.dtype() != dtype || !weight.is_contiguous() ||
      (norm.defined() && (!norm.is_contiguous() || norm.dtype() != dtype)) ||
      (table.defined() &&
       (!table.is_contiguous() || table.dtype() != dtype || table.size(1) != weight.size(1))))
    return false;
  ops::cuda::FusedGemvArgs a;
  a.m = 1, a.n = weight.size(0), a.k = weight.size(1);
  a.w = address_of(weight);
  a.ldx = a.k, a.ldw = a.k, a.ldo = a.n;
  if (norm.defined()) {
    a.prologue = ops::cuda::GemvPrologue::kRmsNorm;
    a.norm_weight = address_of(norm);
  }
  if (silu_after) a.epilogue = ops::cuda::GemvEpilogue::kSiluMul;
  if (table.defined()) {
    a.x = address_of(table);
    a.x_index = static_cast<const int64_t*>(a.x);  // any address: only its presence counts
    a.x_rows = table.size(0);
  }
  return streamed_takes(device, dtype, a);
}

const char* prologue_name(StepPrologue p) {
  switch (p) {
    case StepPrologue::kRmsNorm:
      return " +rms_norm";
    case StepPrologue::kSiluMul:
      return " +silu_and_mul";
    default:
      return "";
  }
}
#endif

}  // namespace

DecoderModel::FusedMode DecoderModel::fused_mode(int64_t rows) const {
#ifdef FLAGSTONE_HAVE_CUDA
  if (dtype_ != DType::kF32 && dtype_ != DType::kF16 && dtype_ != DType::kBF16)
    return FusedMode::kOff;
  // FLAGSTONE_ENGINE_FUSED=1 fuses every product the size limit allows, =layers all but the
  // head's, =0 none. Unset: every product for one row where the streamed GEMV serves the step
  // (sm_90): five kernels a layer ran llama-1b decode 1.07x and llama-8b 1.02x faster there than
  // the eight-kernel step (H200, session 21). Elsewhere off: on the register GEMV the fused form
  // ran about 2x slower than the plain one (the x staging after the wait sits on the critical
  // path; session 12, H200: 913 t/s against 1032).
  // Read at each recording (not per replay), so a test can compare both paths in one process.
  const char* env = std::getenv("FLAGSTONE_ENGINE_FUSED");
  const std::string v = env ? env : "";
  if (v == "1") return FusedMode::kAll;
  if (v == "layers") return FusedMode::kLayers;
  if (!v.empty() || rows != 1 || layers_.empty()) return FusedMode::kOff;
  const Layer& first = layers_.front();
  return streamed_serves(device_, dtype_, first.qkv, first.input_norm, false) ? FusedMode::kAll
                                                                              : FusedMode::kOff;
#else
  (void)rows;
  return FusedMode::kOff;
#endif
}

int64_t DecoderModel::fused_max_elements() const {
  // The register GEMV's fused form measured faster than the ops it replaces only on narrow
  // weights (H200, session 12 window 1: q/k/v, o and down of the 1B shape; gate/up and the head
  // lost to cuBLAS + the separate norm), so wider products stay unfused there (the streamed GEMV
  // takes every size). FLAGSTONE_ENGINE_FUSED_MAX=n moves the limit
  // (weight elements; 0: none).
  const char* env = std::getenv("FLAGSTONE_ENGINE_FUSED_MAX");
  if (env && *env) {
    const int64_t v = std::atoll(env);
    return v > 0 ? v : INT64_MAX;
  }
  return int64_t{2048} * 8192;
}

bool DecoderModel::silu_after_gate_up(const Layer& layer, int64_t rows) const {
#ifdef FLAGSTONE_HAVE_CUDA
  const char* env = std::getenv("FLAGSTONE_ENGINE_SILU");
  if ((env && std::string(env) == "down") || rows != 1) return false;
  return streamed_serves(device_, dtype_, layer.gate_up, layer.post_norm, true);
#else
  (void)layer, (void)rows;
  return false;
#endif
}

bool DecoderModel::gathers_embedding(const Layer& first, int64_t rows) const {
#ifdef FLAGSTONE_HAVE_CUDA
  const char* env = std::getenv("FLAGSTONE_ENGINE_EMBED");
  if ((env && std::string(env) == "op") || rows != 1 || !first.input_norm.defined()) return false;
  return streamed_serves(device_, dtype_, first.qkv, first.input_norm, false, embed_);
#else
  (void)first, (void)rows;
  return false;
#endif
}

bool DecoderModel::kept_in_l2(const Tensor& weight) const {
  static const int64_t budget = [] {
    const char* env = std::getenv("FLAGSTONE_ENGINE_L2_KEEP_MIB");
    return env ? std::atoll(env) << 20 : 0;
  }();
  static const std::string what = [] {
    const char* env = std::getenv("FLAGSTONE_ENGINE_L2_KEEP");
    return std::string(env ? env : "qkv");
  }();
  if (budget <= 0) return false;
  int64_t used = 0;
  for (const Layer& layer : layers_)
    for (const Tensor* kept : {&layer.qkv, &layer.o}) {
      if (!kept->defined() || (kept == &layer.qkv && what == "o") ||
          (kept == &layer.o && what != "o" && what != "both"))
        continue;
      used += kept->nbytes();
      if (used > budget) return false;
      if (address_of(*kept) == address_of(weight)) return true;
    }
  return false;
}

Tensor DecoderModel::step_linear(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                 StepPrologue prologue, const Tensor& norm, const Tensor& residual,
                                 const StepExtras& extras) const {
  const bool silu_after = extras.silu_after;
  const int64_t k = weight.size(1);
  const int64_t rows =
      extras.gather_ids ? 1 : x.numel() / (prologue == StepPrologue::kSiluMul ? 2 * k : k);
#ifdef FLAGSTONE_HAVE_CUDA
  const int64_t n = weight.size(0);
  // Called by the step in fused mode only (decode_body asked fused_mode once).
  if (weight.dtype() == dtype_ && x.dtype() == dtype_ && x.is_contiguous() &&
      weight.is_contiguous() && (!bias.defined() || bias.is_contiguous()) &&
      (!norm.defined() || (norm.is_contiguous() && norm.dtype() == dtype_)) &&
      (!bias.defined() || bias.dtype() == dtype_) &&
      (!residual.defined() || (residual.is_contiguous() && residual.dtype() == dtype_))) {
    ops::cuda::FusedGemvArgs a;
    a.m = rows, a.n = n, a.k = k;
    a.x = address_of(x);
    a.w = address_of(weight);
    a.ldx = prologue == StepPrologue::kSiluMul ? 2 * k : k;
    a.ldw = k, a.ldo = n;
    a.bias = bias.defined() ? address_of(bias) : nullptr;
    a.prologue = prologue == StepPrologue::kRmsNorm   ? ops::cuda::GemvPrologue::kRmsNorm
                 : prologue == StepPrologue::kSiluMul ? ops::cuda::GemvPrologue::kSiluMul
                                                      : ops::cuda::GemvPrologue::kNone;
    a.norm_weight = norm.defined() ? address_of(norm) : nullptr;
    a.eps = static_cast<float>(config_.rms_norm_eps);
    if (silu_after) a.epilogue = ops::cuda::GemvEpilogue::kSiluMul;
    if (extras.gather_ids) {
      a.x_index = static_cast<const int64_t*>(address_of(*extras.gather_ids));
      a.x_rows = x.size(0);
      a.x_out = address_of(extras.gathered);
    }
    a.keep_in_l2 = kept_in_l2(weight);
    if (extras.pick_into && rows == 1) {
      // As pick_next's kernel would: the id into the step's input, to the host slot of its
      // position, the position and length advanced (the scratch's tickets follow its picks).
      DecodeState& s = *extras.pick_into;
      a.pick.out = static_cast<int64_t*>(address_of(s.tokens));
      a.pick.scratch = address_of(s.pick_scratch);
      a.pick.scratch_blocks = kGreedyScratchPicks;
      a.pick.ticket = reinterpret_cast<unsigned*>(static_cast<int64_t*>(a.pick.scratch) +
                                                  kGreedyScratchPicks * 2);
      a.pick.advance = static_cast<int64_t*>(address_of(s.step));
      a.pick.advance_count = 2;
      a.pick.host = s.host_ids_device;
      a.pick.host_slots = kGreedyHostSlots;
      // Only the streamed GEMV picks; without it the step's own kernel does.
      if (!streamed_takes(device_, dtype_, a)) a.pick = {};
    }
    // A fused one-row product takes the streamed GEMV where it serves (the same prologue and
    // residual).
    const bool streamed = streamed_takes(device_, dtype_, a);
    // Only the streamed GEMV looks the row up; elsewhere the op-by-op path below does.
    if (streamed || (!extras.gather_ids && weight.numel() <= fused_max_elements() &&
                     *ops::cuda::fused_gemv_refusal(dtype_, a) == '\0')) {
      Tensor out = residual.defined()
                       ? residual
                       : Tensor::empty({rows, 1, silu_after ? n / 2 : n}, dtype_, device_);
      a.out = address_of(out);
      a.residual = residual.defined() ? address_of(residual) : nullptr;
      a.pdl = true;
      if (ops_.timer())
        ops_.timer()->begin("linear " + shape_to_string(weight.shape()) + " fused" +
                                prologue_name(prologue) + (residual.defined() ? " +residual" : "") +
                                (silu_after ? " +silu_and_mul after" : "") +
                                (a.x_index ? " +embedding" : "") +
                                (a.pick.out ? " +greedy pick" : ""),
                            weight.nbytes());
      launch_checked(device_, "fused linear " + shape_to_string(weight.shape()),
                     [&](cudaStream_t stream) {
                       return streamed ? ops::cuda::launch_streamed_gemv(dtype_, a, stream)
                                       : ops::cuda::launch_fused_gemv(dtype_, a, stream);
                     });
      if (ops_.timer()) ops_.timer()->end();
      if (extras.picked) *extras.picked = a.pick.out != nullptr;
      return out;
    }
  }
#endif
  // The same computation op by op (rounded the same way at each step).
  Tensor in = x;
  if (extras.gather_ids) {
    Tensor row = extras.gathered;  // a handle on the caller's buffer
    row.copy_(ops_.embedding(*extras.gather_ids, x).reshape(row.shape()));
    in = row;
  }
  if (prologue == StepPrologue::kRmsNorm) in = ops_.rms_norm(in, norm, config_.rms_norm_eps);
  if (prologue == StepPrologue::kSiluMul) in = ops_.silu_and_mul(in);
  Tensor y = ops_.linear(in.reshape({rows, 1, k}), weight, bias);
  if (silu_after) y = ops_.silu_and_mul(y);
  return residual.defined() ? ops_.add(y, residual.reshape(y.shape())) : y;
}

Tensor DecoderModel::step_product(const Tensor& x, const Tensor& weight, const Tensor& bias) const {
  const int64_t k = weight.size(1), rows = x.numel() / k;
#ifdef FLAGSTONE_HAVE_CUDA
  const int64_t n = weight.size(0);
  // On sm_90 one-row products take the streamed GEMV (stream_mode above). Otherwise the ops
  // library's GEMV with its first weight loads issued before it waits for the kernel in
  // front (PDL): the step's weights never change while it runs, so their streaming starts under
  // the norm, attention or activation before the product. The narrow products (at most 4096
  // features and 8192 inputs) always take it. The wide ones (gate/up, the head) take it for one
  // row where the device's memory is slower than 4 TB/s: on an H100 (3.35 TB/s) that made
  // llama-1b decode about 3% and llama-8b about 6% faster than cuBLAS there, on an H200 (4.8
  // TB/s) 1-2% slower (sessions 15 and 13; docs/performance.md). With 4 or 8 rows the GEMV ran
  // at 0.25-0.52x of cuBLAS on such weights (gemv.sh). FLAGSTONE_ENGINE_STEP_GEMV overrides: =0
  // every product through the ops library, =narrow, =wide (gate/up too), =head (the head too),
  // =all.
  static const std::string mode = [] {
    const char* env = std::getenv("FLAGSTONE_ENGINE_STEP_GEMV");
    return std::string(env ? env : "");
  }();
  const bool head = n == vocab_;
  const bool wide =
      mode.empty() ? rows == 1 && wide_products_on_gemv(device_.index()) : mode == "all";
  const bool fits =
      wide || (n <= 4096 && k <= 8192) || (mode == "wide" && !head) || (mode == "head" && head);
  const bool down = k > n, gate_up = n >= 2 * k && !head;
  const std::string rule = stream_mode();
  const bool stream_asked = rows == 1 && (rule == "all" || (rule == "wide" && (down || gate_up)) ||
                                          (rule == "down" && down));
  if (mode != "0" && (fits || stream_asked) && rows <= ops::cuda::kGemvMaxRows &&
      weight.dtype() == dtype_ && x.dtype() == dtype_ && x.is_contiguous() &&
      weight.is_contiguous() &&
      (!bias.defined() || (bias.is_contiguous() && bias.dtype() == dtype_))) {
    ops::cuda::FusedGemvArgs a;
    a.m = rows, a.n = n, a.k = k;
    a.x = address_of(x);
    a.w = address_of(weight);
    a.bias = bias.defined() ? address_of(bias) : nullptr;
    a.ldx = k, a.ldw = k, a.ldo = n;
    a.early_weights = true;
    const bool use_stream = stream_asked && streamed_takes(device_, dtype_, a);
    // A product that only the streamed GEMV would have taken goes to ops linear (cuBLAS) when
    // the device refuses it (before sm_90).
    if (!use_stream && !fits) return ops_.linear(x.reshape({rows, 1, k}), weight, bias);
    Tensor out = Tensor::empty({rows, 1, n}, dtype_, device_);
    a.out = address_of(out);
    if (ops_.timer())
      ops_.timer()->begin(
          "linear " + shape_to_string(weight.shape()) + (use_stream ? " streamed" : " early"),
          weight.nbytes());
    launch_checked(device_, "linear " + shape_to_string(weight.shape()), [&](cudaStream_t stream) {
      return use_stream ? ops::cuda::launch_streamed_gemv(dtype_, a, stream)
                        : ops::cuda::launch_gemv(dtype_, a, stream);
    });
    if (ops_.timer()) ops_.timer()->end();
    return out;
  }
#endif
  return ops_.linear(x.reshape({rows, 1, k}), weight, bias);
}

}  // namespace flagstone::engine::detail
