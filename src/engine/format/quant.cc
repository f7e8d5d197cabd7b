// GGML block (de)quantization on the host, bit-exact with ggml's reference kernels.
#include "flagstone/engine/format/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "flagstone/base/error.h"
#include "flagstone/base/half.h"
#include "flagstone/runtime/thread_pool.h"

namespace flagstone::engine::format {

namespace {

// Unpacks the j-th 6-bit (scale, min) pair of a Q4_K block: pairs 0-3 sit in the low six bits
// of bytes 0-7; pairs 4-7 take four bits from bytes 8-11 and two high bits from bytes 0-7.
void q4_k_scale_min(int j, const uint8_t* packed, uint8_t* scale, uint8_t* min) {
  if (j < 4) {
    *scale = packed[j] & 63;
    *min = packed[j + 4] & 63;
  } else {
    *scale = static_cast<uint8_t>((packed[j + 4] & 0xf) | ((packed[j - 4] >> 6) << 4));
    *min = static_cast<uint8_t>((packed[j + 4] >> 4) | ((packed[j] >> 6) << 4));
  }
}

// Splits work on whole blocks over the cpu pool when there is enough of it to pay off.
template <typename Body>
void for_blocks(int64_t n, int64_t values_per_block, const Body& body) {
  const int64_t kGrainValues = 1 << 16;
  int64_t grain = std::max<int64_t>(1, kGrainValues / values_per_block);
  if (n <= grain) {
    body(0, n);
    return;
  }
  runtime::cpu_thread_pool().parallel_for(n, grain, body);
}

}  // namespace

void dequantize_q8_0(const BlockQ8_0* blocks, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float d = f16_bits_to_float(blocks[i].d);
    for (int j = 0; j < kBlockQ8_0; ++j) dst[i * kBlockQ8_0 + j] = d * blocks[i].qs[j];
  }
}

void dequantize_q4_0(const BlockQ4_0* blocks, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float d = f16_bits_to_float(blocks[i].d);
    float* out = dst + i * kBlockQ4_0;
    for (int j = 0; j < kBlockQ4_0 / 2; ++j) {
      out[j] = d * static_cast<float>((blocks[i].qs[j] & 0xf) - 8);
      out[j + 16] = d * static_cast<float>((blocks[i].qs[j] >> 4) - 8);
    }
  }
}

void dequantize_q4_k(const BlockQ4_K* blocks, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const BlockQ4_K& block = blocks[i];
    const float d = f16_bits_to_float(block.d);
    const float dmin = f16_bits_to_float(block.dmin);
    float* out = dst + i * kBlockK;
    const uint8_t* q = block.qs;
    for (int group = 0; group < 4; ++group) {  // 64 values: sub-blocks 2g (low) and 2g+1 (high)
      uint8_t scale, min;
      q4_k_scale_min(2 * group, block.scales, &scale, &min);
      const float d_low = d * scale, m_low = dmin * min;
      q4_k_scale_min(2 * group + 1, block.scales, &scale, &min);
      const float d_high = d * scale, m_high = dmin * min;
      for (int l = 0; l < 32; ++l) out[l] = d_low * (q[l] & 0xf) - m_low;
      for (int l = 0; l < 32; ++l) out[32 + l] = d_high * (q[l] >> 4) - m_high;
      out += 64;
      q += 32;
    }
  }
}

void dequantize_q6_k(const BlockQ6_K* blocks, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const BlockQ6_K& block = blocks[i];
    const float d = f16_bits_to_float(block.d);
    float* out = dst + i * kBlockK;
    // Two halves of 128 values; in each, byte l of ql (l < 64) and of qh (l < 32) serve the
    // values l, l+32, l+64, l+96 of the half.
    for (int half = 0; half < 2; ++half) {
      const uint8_t* ql = block.ql + 64 * half;
      const uint8_t* qh = block.qh + 32 * half;
      const int8_t* sc = block.scales + 8 * half;
      for (int l = 0; l < 32; ++l) {
        const int sub = l / 16;
        const int q1 = ((ql[l] & 0xf) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        out[l] = d * sc[sub + 0] * q1;
        out[l + 32] = d * sc[sub + 2] * q2;
        out[l + 64] = d * sc[sub + 4] * q3;
        out[l + 96] = d * sc[sub + 6] * q4;
      }
      out += 128;
    }
  }
}

void quantize_q8_0(const float* src, BlockQ8_0* blocks, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float* x = src + i * kBlockQ8_0;
    float amax = 0.0f;
    for (int j = 0; j < kBlockQ8_0; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float inverse = d != 0.0f ? 1.0f / d : 0.0f;
    blocks[i].d = float_to_f16_bits(d);
    for (int j = 0; j < kBlockQ8_0; ++j) {
      blocks[i].qs[j] = static_cast<int8_t>(std::round(x[j] * inverse));
    }
  }
}

void quantize_q4_0(const float* src, BlockQ4_0* blocks, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float* x = src + i * kBlockQ4_0;
    // The scale maps the value of largest magnitude, with its sign, to -8: the one code that
    // has no positive counterpart, so the 16 levels are all used.
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < kBlockQ4_0; ++j) {
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    const float d = max / -8.0f;
    const float inverse = d != 0.0f ? 1.0f / d : 0.0f;
    blocks[i].d = float_to_f16_bits(d);
    for (int j = 0; j < kBlockQ4_0 / 2; ++j) {
      // Truncation after adding 8.5 rounds to nearest; clamp 16 (from exactly -max) to 15.
      const int low = std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * inverse + 8.5f)));
      const int high =
          std::min(15, static_cast<int>(static_cast<int8_t>(x[j + 16] * inverse + 8.5f)));
      blocks[i].qs[j] = static_cast<uint8_t>(low | (high << 4));
    }
  }
}

// Q6_K: each sub-block of 16 takes the scale that maps its value of largest magnitude, with
// its sign, to -32 (as q4_0 does: the one code without a positive twin); the sub-block scales
// are then stored as int8 multiples of the super-block's d, and values re-rounded against the
// stored scale so that rounding of the scale does not bias them.
void quantize_q6_k(const float* src, BlockQ6_K* blocks, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float* x = src + i * kBlockK;
    BlockQ6_K& block = blocks[i];
    float sub_scale[16];
    float largest = 0.0f;
    for (int s = 0; s < 16; ++s) {
      float amax = 0.0f, max = 0.0f;
      for (int l = 0; l < 16; ++l) {
        if (amax < std::fabs(x[16 * s + l])) amax = std::fabs(x[16 * s + l]), max = x[16 * s + l];
      }
      sub_scale[s] = max / -32.0f;
      largest = std::max(largest, std::fabs(sub_scale[s]));
    }
    const float d = largest / 127.0f;
    block.d = float_to_f16_bits(d);
    const float d_stored = f16_bits_to_float(block.d);
    uint8_t q[kBlockK];
    for (int s = 0; s < 16; ++s) {
      const int sc =
          d_stored != 0.0f
              ? std::clamp(static_cast<int>(std::lround(sub_scale[s] / d_stored)), -127, 127)
              : 0;
      block.scales[s] = static_cast<int8_t>(sc);
      const float step = d_stored * static_cast<float>(sc);
      for (int l = 0; l < 16; ++l) {
        int v = step != 0.0f ? static_cast<int>(std::lround(x[16 * s + l] / step)) : 0;
        q[16 * s + l] = static_cast<uint8_t>(std::clamp(v, -32, 31) + 32);
      }
    }
    // The layout dequantize_q6_k reads: per half of 128, byte l of ql holds values l and l+64
    // (low and high nibble), byte l+32 values l+32 and l+96; qh byte l holds their top 2 bits.
    for (int half = 0; half < 2; ++half) {
      const uint8_t* v = q + 128 * half;
      uint8_t* ql = block.ql + 64 * half;
      uint8_t* qh = block.qh + 32 * half;
      for (int l = 0; l < 32; ++l) {
        ql[l] = static_cast<uint8_t>((v[l] & 0xf) | ((v[l + 64] & 0xf) << 4));
        ql[l + 32] = static_cast<uint8_t>((v[l + 32] & 0xf) | ((v[l + 96] & 0xf) << 4));
        qh[l] = static_cast<uint8_t>((v[l] >> 4) | ((v[l + 32] >> 4) << 2) |
                                     ((v[l + 64] >> 4) << 4) | ((v[l + 96] >> 4) << 6));
      }
    }
  }
}

// Q4_K: each sub-block of 32 spans [min(x, 0), max(x)] in 15 steps (value = scale * q - min);
// scales and mins are stored as 6-bit multiples of the super-block's d and dmin, and values
// re-rounded against the stored pair.
void quantize_q4_k(const float* src, BlockQ4_K* blocks, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float* x = src + i * kBlockK;
    BlockQ4_K& block = blocks[i];
    float scale[8], min[8];
    float max_scale = 0.0f, max_min = 0.0f;
    for (int s = 0; s < 8; ++s) {
      float lo = 0.0f, hi = x[32 * s];
      for (int l = 0; l < 32; ++l)
        lo = std::min(lo, x[32 * s + l]), hi = std::max(hi, x[32 * s + l]);
      scale[s] = (hi - lo) / 15.0f;
      min[s] = -lo;
      max_scale = std::max(max_scale, scale[s]);
      max_min = std::max(max_min, min[s]);
    }
    block.d = float_to_f16_bits(max_scale / 63.0f);
    block.dmin = float_to_f16_bits(max_min / 63.0f);
    const float d = f16_bits_to_float(block.d), dmin = f16_bits_to_float(block.dmin);
    uint8_t sc[8], mn[8], q[kBlockK];
    for (int s = 0; s < 8; ++s) {
      // Round the scale up so that the top of the range stays reachable with q <= 15.
      sc[s] = static_cast<uint8_t>(
          d > 0.0f ? std::clamp(static_cast<int>(std::ceil(scale[s] / d)), 0, 63) : 0);
      mn[s] = static_cast<uint8_t>(
          dmin > 0.0f ? std::clamp(static_cast<int>(std::lround(min[s] / dmin)), 0, 63) : 0);
      const float step = d * sc[s], offset = dmin * mn[s];
      for (int l = 0; l < 32; ++l) {
        int v = step > 0.0f ? static_cast<int>(std::lround((x[32 * s + l] + offset) / step)) : 0;
        q[32 * s + l] = static_cast<uint8_t>(std::clamp(v, 0, 15));
      }
    }
    std::memset(block.scales, 0, sizeof block.scales);
    for (int s = 0; s < 8; ++s) {
      if (s < 4) {
        block.scales[s] = sc[s];
        block.scales[s + 4] = mn[s];
      } else {
        block.scales[s + 4] = static_cast<uint8_t>((sc[s] & 0xf) | ((mn[s] & 0xf) << 4));
        block.scales[s - 4] = static_cast<uint8_t>(block.scales[s - 4] | ((sc[s] >> 4) << 6));
        block.scales[s] = static_cast<uint8_t>(block.scales[s] | ((mn[s] >> 4) << 6));
      }
    }
    // Per group of 64 values, byte l holds value l (low nibble) and value l + 32 (high).
    for (int group = 0; group < 4; ++group) {
      for (int l = 0; l < 32; ++l) {
        block.qs[32 * group + l] =
            static_cast<uint8_t>(q[64 * group + l] | (q[64 * group + 32 + l] << 4));
      }
    }
  }
}

void dequantize(DType dtype, const void* src, float* dst, int64_t count) {
  const DTypeInfo& info = dtype_info(dtype);
  FS_CHECK(count >= 0 && count % info.block_elements == 0, kInvalidArgument, "dequantize of ",
           count, " values of ", info.name, ": not a whole number of ", info.block_elements,
           "-value blocks");
  if (count == 0) return;  // empty tensors may come with null pointers
  const int64_t n = count / info.block_elements;
  const auto* bytes = static_cast<const std::byte*>(src);
  // Mapped files may place a tensor at any byte offset; decode from an aligned copy then.
  std::vector<double> aligned;
  if (reinterpret_cast<uintptr_t>(src) % alignof(double) != 0) {
    size_t total = dtype_bytes(dtype, count);
    aligned.resize((total + sizeof(double) - 1) / sizeof(double));
    std::memcpy(aligned.data(), src, total);
    bytes = reinterpret_cast<const std::byte*>(aligned.data());
  }
  auto run = [&](auto kernel, int64_t per_block) {
    for_blocks(n, per_block, [&](int64_t begin, int64_t end) { kernel(begin, end); });
  };
  switch (dtype) {
    case DType::kF32:
      std::memcpy(dst, bytes, static_cast<size_t>(count) * sizeof(float));
      return;
    case DType::kF64:
      run(
          [&](int64_t b, int64_t e) {
            const auto* f = reinterpret_cast<const double*>(bytes);
            for (int64_t i = b; i < e; ++i) dst[i] = static_cast<float>(f[i]);
          },
          1);
      return;
    case DType::kF16:
      run(
          [&](int64_t b, int64_t e) {
            const auto* h = reinterpret_cast<const uint16_t*>(bytes);
            for (int64_t i = b; i < e; ++i) dst[i] = f16_bits_to_float(h[i]);
          },
          1);
      return;
    case DType::kBF16:
      run(
          [&](int64_t b, int64_t e) {
            const auto* h = reinterpret_cast<const uint16_t*>(bytes);
            for (int64_t i = b; i < e; ++i) dst[i] = bf16_bits_to_float(h[i]);
          },
          1);
      return;
    case DType::kQ8_0:
      run(
          [&](int64_t b, int64_t e) {
            dequantize_q8_0(reinterpret_cast<const BlockQ8_0*>(bytes) + b, dst + b * kBlockQ8_0,
                            e - b);
          },
          kBlockQ8_0);
      return;
    case DType::kQ4_0:
      run(
          [&](int64_t b, int64_t e) {
            dequantize_q4_0(reinterpret_cast<const BlockQ4_0*>(bytes) + b, dst + b * kBlockQ4_0,
                            e - b);
          },
          kBlockQ4_0);
      return;
    case DType::kQ4_K:
      run(
          [&](int64_t b, int64_t e) {
            dequantize_q4_k(reinterpret_cast<const BlockQ4_K*>(bytes) + b, dst + b * kBlockK,
                            e - b);
          },
          kBlockK);
      return;
    case DType::kQ6_K:
      run(
          [&](int64_t b, int64_t e) {
            dequantize_q6_k(reinterpret_cast<const BlockQ6_K*>(bytes) + b, dst + b * kBlockK,
                            e - b);
          },
          kBlockK);
      return;
    default:
      throw_error(ErrorCategory::kUnsupported, "dequantize to f32 from ", info.name,
                  " is not supported (float and GGML block types only)");
  }
}

void quantize(DType dtype, const float* src, void* dst, int64_t count) {
  const DTypeInfo& info = dtype_info(dtype);
  FS_CHECK(count >= 0 && count % info.block_elements == 0, kInvalidArgument, "quantize of ", count,
           " values to ", info.name, ": not a whole number of ", info.block_elements,
           "-value blocks");
  if (count == 0) return;
  const int64_t n = count / info.block_elements;
  auto* bytes = static_cast<std::byte*>(dst);
  switch (dtype) {
    case DType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(count) * sizeof(float));
      return;
    case DType::kF16:
      for_blocks(n, 1, [&](int64_t b, int64_t e) {
        auto* h = reinterpret_cast<uint16_t*>(bytes);
        for (int64_t i = b; i < e; ++i) h[i] = float_to_f16_bits(src[i]);
      });
      return;
    case DType::kBF16:
      for_blocks(n, 1, [&](int64_t b, int64_t e) {
        auto* h = reinterpret_cast<uint16_t*>(bytes);
        for (int64_t i = b; i < e; ++i) h[i] = float_to_bf16_bits(src[i]);
      });
      return;
    case DType::kQ8_0:
      for_blocks(n, kBlockQ8_0, [&](int64_t b, int64_t e) {
        quantize_q8_0(src + b * kBlockQ8_0, reinterpret_cast<BlockQ8_0*>(bytes) + b, e - b);
      });
      return;
    case DType::kQ4_0:
      for_blocks(n, kBlockQ4_0, [&](int64_t b, int64_t e) {
        quantize_q4_0(src + b * kBlockQ4_0, reinterpret_cast<BlockQ4_0*>(bytes) + b, e - b);
      });
      return;
    case DType::kQ4_K:
      for_blocks(n, kBlockK, [&](int64_t b, int64_t e) {
        quantize_q4_k(src + b * kBlockK, reinterpret_cast<BlockQ4_K*>(bytes) + b, e - b);
      });
      return;
    case DType::kQ6_K:
      for_blocks(n, kBlockK, [&](int64_t b, int64_t e) {
        quantize_q6_k(src + b * kBlockK, reinterpret_cast<BlockQ6_K*>(bytes) + b, e - b);
      });
      return;
    default:
      throw_error(ErrorCategory::kUnsupported, "quantize from f32 to ", info.name,
                  " is not supported (f32, f16, bf16, q8_0, q4_0, q4_k and q6_k are)");
  }
}

std::vector<std::byte> quantize(DType dtype, const float* src, int64_t count) {
  std::vector<std::byte> out(dtype_bytes(dtype, count));
  quantize(dtype, src, out.data(), count);
  return out;
}

}  // namespace flagstone::engine::format
