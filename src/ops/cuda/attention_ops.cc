// cuda native attention: scaled_dot_product_attention (tensor-core flash kernel for f16/bf16
// prefill, the GQA-grouped split kernel for f16/bf16 decode, the row kernel for f32 and
// everything else) and paged decode attention.
// Inputs are read through their strides, so K/V views of a cache need no copy.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <mutex>

#include "cuda/cuda_common.h"
#include "internal.h"

namespace flagstone::ops::cuda {

// attention_decode.cu: the smallest share of keys a decode split is given, and the workspace
// floats per (sequence, query head) for a split count.
int64_t decode_attention_min_keys(int64_t head_dim, int64_t group);
int64_t decode_attention_partial_floats(int64_t splits, int64_t head_dim);

namespace {

// Scratch for split decode partials and the decode kernel's ticket counters: allocated once per
// device on first use (outside any graph capture that follows a warm-up call), so decode launches
// allocate nothing. The counters are zeroed once; each launch leaves them zero again.
constexpr size_t kPartialBytes = size_t{16} << 20;
constexpr int64_t kCounters = 65536;  // (sequence, kv head) pairs one decode launch may have

struct Scratch {
  float* partials;
  unsigned* counters;
};

Scratch scratch_for(const Device& device, cudaStream_t stream) {
  static std::mutex mutex;
  static auto* buffers = new std::map<int, Buffer>();
  std::lock_guard lock(mutex);
  Buffer& buffer = (*buffers)[device.index()];
  char* base;
  if (!buffer.defined()) {
    buffer = Buffer::allocate(device, kPartialBytes + kCounters * sizeof(unsigned));
    base = static_cast<char*>(buffer.handle());
    check_launch(cudaMemsetAsync(base + kPartialBytes, 0, kCounters * sizeof(unsigned), stream),
                 "scaled_dot_product_attention", device);
  }
  base = static_cast<char*>(buffer.handle());
  return {reinterpret_cast<float*>(base), reinterpret_cast<unsigned*>(base + kPartialBytes)};
}

// Few rows over many keys (decode) leave most SMs idle with one block per row: split the keys so
// about two blocks per SM run, each over at least 512 keys.
void plan_splits(AttentionArgs& a, int64_t rows, int64_t keys, const Device& device) {
  int64_t blocks = rows * a.q_heads * a.batch;
  int64_t sms = std::max(1, device.info().compute_units);
  if (keys < 1024 || blocks >= 2 * sms) return;
  int64_t splits = std::min<int64_t>({(2 * sms + blocks - 1) / blocks, keys / 512, 32});
  int64_t bytes_per_split = blocks * (3 + a.v_dim) * static_cast<int64_t>(sizeof(float));
  splits = std::min<int64_t>(splits, static_cast<int64_t>(kPartialBytes) / bytes_per_split);
  if (splits < 2) return;
  a.splits = static_cast<int>(splits);
  a.partials = scratch_for(device, stream_for(device)).partials;
}

// Decode with the GQA-grouped kernel: one block per (split, kv head, sequence), about two
// blocks per SM when the cache is full (more leave the last split more partials to merge: four
// per SM was 1.4x slower at 4096 keys on the H200). The split count follows the capacity (a
// recorded step replays it for every length); each block sizes its share from the live length, so a
// short sequence runs few blocks, each with at least one full pass of loads per thread. False when
// the partials or counters do not fit.
bool plan_decode(AttentionArgs& a, const Device& device, cudaStream_t stream) {
  constexpr int64_t kMaxSplits = 128;  // as attention_decode.cuh
  const int64_t min_keys = decode_attention_min_keys(a.head_dim, a.q_heads / a.kv_heads);
  int64_t blocks = a.kv_heads * a.batch;
  int64_t sms = std::max(1, device.info().compute_units);
  int64_t keys = a.block_table ? a.max_blocks * a.block_size : a.kv_len;
  int64_t splits = std::min((2 * sms + blocks - 1) / blocks, (keys + min_keys - 1) / min_keys);
  int64_t bytes_per_split =
      a.batch * a.q_heads * decode_attention_partial_floats(1, a.v_dim) * int64_t{sizeof(float)};
  splits = std::min<int64_t>(
      {splits, static_cast<int64_t>(kPartialBytes) / bytes_per_split, kMaxSplits});
  if (splits < 1) return false;
  a.splits = static_cast<int>(splits);
  if (splits > 1) {
    if (blocks > kCounters) return false;
    Scratch s = scratch_for(device, stream);
    a.partials = s.partials, a.counters = s.counters;
  }
  return true;
}

void run_decode(const AttentionArgs& a, DType dtype, cudaStream_t stream, const KernelArgs& args) {
  check_launch(launch_decode_attention(dtype, a, stream), args.op, args.device);
}

void strides4(const Tensor& t, int64_t (&s)[4]) {
  for (int d = 0; d < 4; ++d) s[d] = t.size(d) == 1 ? 0 : t.stride(d);
}

void sdpa(KernelArgs& args) {
  const Tensor &q = args.inputs[0], &k = args.inputs[1], &v = args.inputs[2];
  Tensor mask = optional_input(args, 3);
  Tensor& out = args.outputs[0];
  AttentionArgs a;
  a.out = data_of(out);
  a.q = data_of(q), a.k = data_of(k), a.v = data_of(v);
  a.batch = q.size(0), a.q_heads = q.size(1), a.q_len = q.size(2), a.head_dim = q.size(3);
  a.kv_heads = k.size(1), a.kv_len = k.size(2), a.v_dim = v.size(3);
  strides4(q, a.q_stride), strides4(k, a.k_stride), strides4(v, a.v_stride);
  strides4(out, a.o_stride);
  a.scale = static_cast<float>(
      args.attrs.get_double("scale", 1.0 / std::sqrt(static_cast<double>(a.head_dim))));
  a.causal = args.attrs.get_bool("causal", false);
  a.causal_shift = args.attrs.get_string("causal_alignment", "top_left") == "bottom_right"
                       ? a.kv_len - a.q_len
                       : 0;
  if (mask.defined()) {
    a.mask = data_of(mask);
    a.mask_dtype = mask.dtype();
    Shape full{a.batch, a.q_heads, a.q_len, a.kv_len};
    Shape ms = broadcast_strides_of(mask, full);
    for (int d = 0; d < 4; ++d) a.mask_stride[d] = ms[d];
  }
  cudaStream_t stream = stream_for(args.device);
  if (decode_attention_supported(q.dtype(), a) && plan_decode(a, args.device, stream)) {
    run_decode(a, q.dtype(), stream, args);
    return;
  }
  bool flash = flash_attention_supported(q.dtype(), a);
  if (!flash) plan_splits(a, a.q_len, a.kv_len, args.device);
  cudaError_t status =
      flash ? launch_flash_attention(q.dtype(), a, stream) : launch_attention(q.dtype(), a, stream);
  check_launch(status, args.op, args.device);
}

void paged(KernelArgs& args) {
  const Tensor &q = args.inputs[0], &kc = args.inputs[1], &vc = args.inputs[2];
  const Tensor &bt = args.inputs[3], &sl = args.inputs[4];
  Tensor& out = args.outputs[0];
  AttentionArgs a;
  a.out = data_of(out);
  a.q = data_of(q), a.k = data_of(kc), a.v = data_of(vc);
  a.batch = q.size(0), a.q_heads = q.size(1), a.q_len = 1, a.head_dim = q.size(2);
  a.kv_heads = kc.size(2), a.v_dim = q.size(2);
  a.q_stride[0] = q.stride(0), a.q_stride[1] = q.stride(1), a.q_stride[3] = q.stride(2);
  a.o_stride[0] = out.stride(0), a.o_stride[1] = out.stride(1), a.o_stride[3] = out.stride(2);
  for (int d = 0; d < 4; ++d) a.k_stride[d] = kc.stride(d);
  a.scale = static_cast<float>(
      args.attrs.get_double("scale", 1.0 / std::sqrt(static_cast<double>(a.head_dim))));
  a.block_table = data_of(bt), a.table_i64 = bt.dtype() == DType::kI64;
  a.seq_lens = data_of(sl), a.lens_i64 = sl.dtype() == DType::kI64;
  a.block_size = kc.size(1), a.max_blocks = bt.size(1), a.num_blocks = kc.size(0);
  cudaStream_t stream = stream_for(args.device);
  if (decode_attention_supported(q.dtype(), a) && plan_decode(a, args.device, stream)) {
    run_decode(a, q.dtype(), stream, args);
    return;
  }
  plan_splits(a, 1, a.max_blocks * a.block_size, args.device);
  check_launch(launch_attention(q.dtype(), a, stream), args.op, args.device);
}

std::string sdpa_supports(const KernelArgs& args) {
  const Tensor &q = args.inputs[0], &v = args.inputs[2];
  if (q.size(3) > 256 || v.size(3) > 256) return "head dims above 256";
  if (q.size(0) > 65535 || q.size(1) > 65535) return "more than 65535 batches or heads";
  if (q.size(2) >= (int64_t{1} << 31)) return "2^31 or more queries";
  return "";
}

}  // namespace

void register_cuda_attention(Registry& r) {
  add_cuda(r, "scaled_dot_product_attention", kHalfAndF32, sdpa, true, sdpa_supports);
  add_cuda(r, "paged_attention", kHalfAndF32, paged, false, [](const KernelArgs& args) {
    const Tensor& q = args.inputs[0];
    if (q.size(2) > 256) return std::string("head dims above 256");
    if (q.size(0) > 65535 || q.size(1) > 65535)
      return std::string("more than 65535 sequences or heads");
    return std::string();
  });
}

}  // namespace flagstone::ops::cuda
