// cuda native attention for every case the schema allows (any dtype, head dims up to 256, any
// strides, causal with either alignment, bool or additive masks, GQA/MQA) and paged decode over a
// block table. One block per query row (or, for decode over long caches, per row and key split,
// merged by a second kernel as flash-decoding does); its warps split the keys and keep an online
// softmax each, merged at the end. Decode-shaped calls spend their time here; long prefills in
// f16/bf16 go to the tensor-core kernel of attention_flash.cu.
#include "cuda/device_utils.cuh"
#include "cuda/kernels.h"

namespace flagstone::ops::cuda {
namespace {

constexpr int kMaxChunks = 8;  // head_dim <= 256: eight elements per lane

template <typename T, bool kPaged>
__global__ void attention_rows(AttentionArgs a) {
  extern __shared__ float merge[];  // per warp: m, l, then v_dim accumulators
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  const int splits = a.splits;
  const int64_t i = blockIdx.x / splits, h = blockIdx.y, b = blockIdx.z;
  const int split = static_cast<int>(blockIdx.x % splits);
  const int64_t kh = h / (a.q_heads / a.kv_heads);
  const T* q =
      static_cast<const T*>(a.q) + b * a.q_stride[0] + h * a.q_stride[1] + i * a.q_stride[2];
  const T* kbase = static_cast<const T*>(a.k);
  const T* vbase = static_cast<const T*>(a.v);
  T* out = static_cast<T*>(a.out) + b * a.o_stride[0] + h * a.o_stride[1] + i * a.o_stride[2];

  int64_t n = a.kv_len;
  bool bad = false;
  if constexpr (kPaged) {
    n = load_index(a.seq_lens, a.lens_i64, b);
    if (n < 0 || n > a.max_blocks * a.block_size) bad = true, n = 0;
  }
  int64_t end = n;
  if (a.causal) end = min(n, max(int64_t{0}, i + a.causal_shift + 1));

  float qf[kMaxChunks], acc[kMaxChunks];
#pragma unroll
  for (int t = 0; t < kMaxChunks; ++t) {
    int64_t c = lane + 32 * t;
    qf[t] = c < a.head_dim ? to_f(q[c * a.q_stride[3]]) * a.scale : 0.0f;
    acc[t] = 0;
  }
  float m = -INFINITY, l = 0;
  const int64_t chunk = (end + splits - 1) / splits, j_begin = split * chunk;
  const int64_t j_end = min(end, j_begin + chunk);
  for (int64_t j = j_begin + warp; j < j_end; j += warps) {
    const T *kr, *vr;
    if constexpr (kPaged) {
      int64_t blk = load_index(a.block_table, a.table_i64, b * a.max_blocks + j / a.block_size);
      if (blk < 0 || blk >= a.num_blocks) {
        bad = true;
        break;
      }
      int64_t off = blk * a.k_stride[0] + (j % a.block_size) * a.k_stride[1] + kh * a.k_stride[2];
      kr = kbase + off;
      vr = vbase + off;
    } else {
      kr = kbase + b * a.k_stride[0] + kh * a.k_stride[1] + j * a.k_stride[2];
      vr = vbase + b * a.v_stride[0] + kh * a.v_stride[1] + j * a.v_stride[2];
    }
    float bias = 0;
    if (a.mask) {
      int64_t at =
          b * a.mask_stride[0] + h * a.mask_stride[1] + i * a.mask_stride[2] + j * a.mask_stride[3];
      if (a.mask_dtype == DType::kBool) {
        if (!static_cast<const bool*>(a.mask)[at]) continue;
      } else {
        bias = load_any(a.mask, a.mask_dtype, at);
        if (bias == -INFINITY) continue;
      }
    }
    float part = 0;
#pragma unroll
    for (int t = 0; t < kMaxChunks; ++t) {
      int64_t c = lane + 32 * t;
      if (c < a.head_dim) part += qf[t] * to_f(kr[c * a.k_stride[3]]);
    }
    float s = warp_sum(part) + bias;
    if (s > m) {
      float correction = expf(m - s);
      l *= correction;
#pragma unroll
      for (int t = 0; t < kMaxChunks; ++t) acc[t] *= correction;
      m = s;
    }
    float p = expf(s - m);
    l += p;
    int64_t vs = kPaged ? a.k_stride[3] : a.v_stride[3];
#pragma unroll
    for (int t = 0; t < kMaxChunks; ++t) {
      int64_t c = lane + 32 * t;
      if (c < a.v_dim) acc[t] += p * to_f(vr[c * vs]);
    }
  }
  float* mine = merge + warp * (2 + a.v_dim);
  if (lane == 0) mine[0] = m, mine[1] = l;
#pragma unroll
  for (int t = 0; t < kMaxChunks; ++t) {
    int64_t c = lane + 32 * t;
    if (c < a.v_dim) mine[2 + c] = acc[t];
  }
  bad = __syncthreads_or(bad);
  float big = -INFINITY;
  for (int w = 0; w < warps; ++w) big = fmaxf(big, merge[w * (2 + a.v_dim)]);
  float total = 0;
  if (big != -INFINITY)
    for (int w = 0; w < warps; ++w) {
      float* theirs = merge + w * (2 + a.v_dim);
      total += theirs[1] * expf(theirs[0] - big);
    }
  if (splits > 1) {
    // This split's share, unnormalized, for attention_combine.
    const int64_t rows = gridDim.x / splits;
    float* part = a.partials + (((b * a.q_heads + h) * rows + i) * splits + split) * (3 + a.v_dim);
    if (threadIdx.x == 0) {
      part[0] = big, part[1] = total;
      part[2] = static_cast<float>((bad ? 1 : 0) + (n == 0 ? 2 : 0));
    }
    for (int64_t c = threadIdx.x; c < a.v_dim; c += blockDim.x) {
      float value = 0;
      if (big != -INFINITY)
        for (int w = 0; w < warps; ++w) {
          float* theirs = merge + w * (2 + a.v_dim);
          value += theirs[2 + c] * expf(theirs[0] - big);
        }
      part[3 + c] = value;
    }
    return;
  }
  for (int64_t c = threadIdx.x; c < a.v_dim; c += blockDim.x) {
    float value = 0;
    if (bad) {
      value = NAN;
    } else if (total > 0) {
      for (int w = 0; w < warps; ++w) {
        float* theirs = merge + w * (2 + a.v_dim);
        value += theirs[2 + c] * expf(theirs[0] - big);
      }
      value /= total;
    } else {
      // No allowed key: NaN as torch gives for a fully masked row; no keys at all: zeros.
      value = n == 0 ? 0.0f : NAN;
    }
    out[c * a.o_stride[3]] = from_f<T>(value);
  }
}

// Merges the key splits of each row written by attention_rows.
template <typename T>
__global__ void attention_combine(AttentionArgs a, int64_t rows) {
  const int64_t i = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int64_t width = 3 + a.v_dim;
  const float* base = a.partials + ((b * a.q_heads + h) * rows + i) * a.splits * width;
  float big = -INFINITY;
  int flags = 0;
  for (int s = 0; s < a.splits; ++s) {
    big = fmaxf(big, base[s * width]);
    flags |= static_cast<int>(base[s * width + 2]);
  }
  float total = 0;
  for (int s = 0; s < a.splits; ++s)
    if (base[s * width] != -INFINITY) total += base[s * width + 1] * expf(base[s * width] - big);
  T* out = static_cast<T*>(a.out) + b * a.o_stride[0] + h * a.o_stride[1] + i * a.o_stride[2];
  for (int64_t c = threadIdx.x; c < a.v_dim; c += blockDim.x) {
    float value = 0;
    if (flags & 1) {
      value = NAN;
    } else if (total > 0) {
      for (int s = 0; s < a.splits; ++s)
        if (base[s * width] != -INFINITY)
          value += base[s * width + 3 + c] * expf(base[s * width] - big);
      value /= total;
    } else {
      value = (flags & 2) ? 0.0f : NAN;
    }
    out[c * a.o_stride[3]] = from_f<T>(value);
  }
}

template <typename T>
cudaError_t attention_typed(const AttentionArgs& a, cudaStream_t stream) {
  bool paged = a.block_table != nullptr;
  int64_t rows = paged ? 1 : a.q_len;
  if (a.batch == 0 || a.q_heads == 0 || rows == 0 || a.v_dim == 0) return cudaSuccess;
  if (a.batch > 65535 || a.q_heads > 65535 || a.head_dim > 32 * kMaxChunks ||
      a.v_dim > 32 * kMaxChunks)
    return cudaErrorInvalidValue;
  if (a.splits < 1 || (a.splits > 1 && !a.partials) || rows * a.splits >= (int64_t{1} << 31))
    return cudaErrorInvalidValue;
  int64_t keys = (paged ? a.max_blocks * a.block_size : a.kv_len) / a.splits;
  int warps = keys >= 1024 ? 16 : keys >= 128 ? 8 : 4;
  size_t smem = static_cast<size_t>(warps) * static_cast<size_t>(2 + a.v_dim) * sizeof(float);
  dim3 grid(static_cast<unsigned>(rows * a.splits), static_cast<unsigned>(a.q_heads),
            static_cast<unsigned>(a.batch));
  if (paged)
    attention_rows<T, true><<<grid, warps * 32, smem, stream>>>(a);
  else
    attention_rows<T, false><<<grid, warps * 32, smem, stream>>>(a);
  if (a.splits > 1) {
    dim3 rows_grid(static_cast<unsigned>(rows), static_cast<unsigned>(a.q_heads),
                   static_cast<unsigned>(a.batch));
    attention_combine<T><<<rows_grid, 128, 0, stream>>>(a, rows);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_attention_combine(DType dtype, const AttentionArgs& a, cudaStream_t stream) {
  dim3 grid(static_cast<unsigned>(a.q_len), static_cast<unsigned>(a.q_heads),
            static_cast<unsigned>(a.batch));
  if (dtype == DType::kBF16)
    attention_combine<__nv_bfloat16><<<grid, 128, 0, stream>>>(a, a.q_len);
  else if (dtype == DType::kF16)
    attention_combine<__half><<<grid, 128, 0, stream>>>(a, a.q_len);
  else
    return cudaErrorInvalidValue;
  return cudaGetLastError();
}

cudaError_t launch_attention(DType dtype, const AttentionArgs& args, cudaStream_t stream) {
  switch (dtype) {
    case DType::kF32:
      return attention_typed<float>(args, stream);
    case DType::kF16:
      return attention_typed<__half>(args, stream);
    case DType::kBF16:
      return attention_typed<__nv_bfloat16>(args, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace flagstone::ops::cuda
