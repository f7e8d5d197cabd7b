// GGML block quantization on the host: the layouts of Q8_0, Q4_0, Q4_K and Q6_K, dequantization
// of all four to f32, and quantization of f32 to each (Q8_0/Q4_0 bit-exact with ggml's reference).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "flagstone/base/dtype.h"

namespace flagstone::engine::format {

inline constexpr int kBlockQ8_0 = 32;
inline constexpr int kBlockQ4_0 = 32;
inline constexpr int kBlockK = 256;  // K-quant super-block

// Scales are IEEE half bits. Values are d * q.
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[32];
};
// Values are d * (q - 8); byte j holds element j in its low nibble and element j + 16 in its
// high nibble.
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[16];
};
// Eight sub-blocks of 32: value = d * scale_i * q - dmin * min_i, with 6-bit scale_i and min_i
// packed into `scales`; each group of 64 values shares 32 bytes of qs (low nibbles first).
struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qs[128];
};
// Sixteen sub-blocks of 16: value = d * scales_i * (q - 32) with q's low 4 bits in ql and high
// 2 bits in qh.
struct BlockQ6_K {
  uint8_t ql[128];
  uint8_t qh[64];
  int8_t scales[16];
  uint16_t d;
};
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_K) == 144 && sizeof(BlockQ6_K) == 210);

// Converts `count` values stored as `dtype` to f32. Handles the plain float types and Q8_0,
// Q4_0, Q4_K, Q6_K; `count` must be a whole number of blocks (kInvalidArgument otherwise).
// Large inputs are split over the cpu thread pool.
void dequantize(DType dtype, const void* src, float* dst, int64_t count);
// Converts `count` f32 values to `dtype`: f32, f16, bf16, Q8_0, Q4_0 (ggml's reference
// rounding, so files match what llama.cpp writes), Q4_K or Q6_K (valid blocks any GGUF reader
// decodes; the scales come from each sub-block's range rather than ggml's iterative search, so
// bytes differ from llama-quantize's). `dst` holds dtype_bytes(dtype, count).
void quantize(DType dtype, const float* src, void* dst, int64_t count);
std::vector<std::byte> quantize(DType dtype, const float* src, int64_t count);

// Block-level kernels (n = number of blocks).
void dequantize_q8_0(const BlockQ8_0* blocks, float* dst, int64_t n);
void dequantize_q4_0(const BlockQ4_0* blocks, float* dst, int64_t n);
void dequantize_q4_k(const BlockQ4_K* blocks, float* dst, int64_t n);
void dequantize_q6_k(const BlockQ6_K* blocks, float* dst, int64_t n);
void quantize_q8_0(const float* src, BlockQ8_0* blocks, int64_t n);
void quantize_q4_0(const float* src, BlockQ4_0* blocks, int64_t n);
void quantize_q4_k(const float* src, BlockQ4_K* blocks, int64_t n);
void quantize_q6_k(const float* src, BlockQ6_K* blocks, int64_t n);

}  // namespace flagstone::engine::format
