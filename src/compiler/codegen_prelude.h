// Helper functions emitted at the top of every generated kernel: f16/bf16 conversions (round
// to nearest even, same bits as flagstone/base/half.h) and atomics, per dialect.
#pragma once

namespace flagstone::compiler {

// Written once with FS_FN / FS_U32 / FS_U16 / fs_bits2f / fs_f2bits / FS_RINTF supplied by the
// dialect-specific part before it. A dialect with hardware f16 conversions defines fs_h2f and
// fs_f2h itself, with FS_HW_HALF (the same bits, except a NaN's payload).
inline constexpr const char* kHalfPrelude = R"(
#ifndef FS_HW_HALF
FS_FN float fs_h2f(FS_U16 h) {
  FS_U32 s = ((FS_U32)h & 0x8000u) << 16;
  FS_U32 e = ((FS_U32)h >> 10) & 0x1fu;
  FS_U32 m = (FS_U32)h & 0x3ffu;
  if (e == 0u) {
    float v = (float)m * 5.9604644775390625e-8f;
    return s ? -v : v;
  }
  if (e == 31u) return fs_bits2f(s | 0x7f800000u | (m << 13));
  return fs_bits2f(s | ((e + 112u) << 23) | (m << 13));
}
FS_FN FS_U16 fs_f2h(float f) {
  FS_U32 x = fs_f2bits(f);
  FS_U32 s = (x >> 16) & 0x8000u;
  FS_U32 ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return (FS_U16)(s | 0x7e00u | ((ax >> 13) & 0x3ffu));
  if (ax >= 0x477ff000u) return (FS_U16)(s | 0x7c00u);
  if (ax < 0x38800000u) return (FS_U16)(s | (FS_U32)FS_RINTF(fs_bits2f(ax) * 16777216.0f));
  FS_U32 r = ax + 0xc8000fffu + ((ax >> 13) & 1u);
  return (FS_U16)(s | (r >> 13));
}
#endif
FS_FN float fs_bf2f(FS_U16 h) { return fs_bits2f((FS_U32)h << 16); }
FS_FN FS_U16 fs_f2bf(float f) {
  FS_U32 x = fs_f2bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (FS_U16)((x >> 16) | 0x40u);
  return (FS_U16)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}
FS_FN float fs_rh(float f) { return fs_h2f(fs_f2h(f)); }
FS_FN float fs_rbf(float f) { return fs_bf2f(fs_f2bf(f)); }
)";

inline constexpr const char* kCpuPrelude = R"(#include <cmath>
#include <cstdint>
#include <cstring>
#define FS_FN static inline
#define FS_U32 uint32_t
#define FS_U16 uint16_t
#define FS_RINTF(x) std::nearbyint(x)
FS_FN float fs_bits2f(uint32_t b) { float f; std::memcpy(&f, &b, 4); return f; }
FS_FN uint32_t fs_f2bits(float f) { uint32_t b; std::memcpy(&b, &f, 4); return b; }
FS_FN float fs_rsqrt(float x) { return 1.0f / std::sqrt(x); }
FS_FN double fs_rsqrt(double x) { return 1.0 / std::sqrt(x); }
FS_FN void fs_atomic_add(int32_t* p, int32_t v) { __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
FS_FN void fs_atomic_max(int32_t* p, int32_t v) {
  int32_t o = __atomic_load_n(p, __ATOMIC_RELAXED);
  while (v > o && !__atomic_compare_exchange_n(p, &o, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
}
FS_FN void fs_atomic_add(float* p, float v) {
  uint32_t* q = reinterpret_cast<uint32_t*>(p);
  uint32_t o = __atomic_load_n(q, __ATOMIC_RELAXED);
  while (!__atomic_compare_exchange_n(q, &o, fs_f2bits(fs_bits2f(o) + v), true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
}
FS_FN void fs_atomic_max(float* p, float v) {
  uint32_t* q = reinterpret_cast<uint32_t*>(p);
  uint32_t o = __atomic_load_n(q, __ATOMIC_RELAXED);
  while (v > fs_bits2f(o) && !__atomic_compare_exchange_n(q, &o, fs_f2bits(v), true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
}
)";

inline constexpr const char* kOpenCLPrelude = R"(#define FS_FN inline
#define FS_U32 uint
#define FS_U16 ushort
#define FS_RINTF(x) rint(x)
FS_FN float fs_bits2f(uint b) { return as_float(b); }
FS_FN uint fs_f2bits(float f) { return as_uint(f); }
// f16 through the built-in conversions (core OpenCL C, no cl_khr_fp16 needed): one instruction
// each on GPUs, where the portable bit manipulation cost f16 kernels most of their bandwidth.
#define FS_HW_HALF 1
FS_FN float fs_h2f(ushort h) { return vload_half(0, (const __private half*)&h); }
FS_FN ushort fs_f2h(float f) {
  ushort r;
  vstore_half_rte(f, 0, (__private half*)&r);
  return r;
}
FS_FN void fs_atomic_add_i(volatile __global int* p, int v) { atomic_add(p, v); }
FS_FN void fs_atomic_max_i(volatile __global int* p, int v) { atomic_max(p, v); }
FS_FN void fs_atomic_add_f(volatile __global float* p, float v) {
  volatile __global uint* q = (volatile __global uint*)p;
  uint o = *q;
  for (;;) {
    uint prev = atomic_cmpxchg(q, o, as_uint(as_float(o) + v));
    if (prev == o) break;
    o = prev;
  }
}
FS_FN void fs_atomic_max_f(volatile __global float* p, float v) {
  volatile __global uint* q = (volatile __global uint*)p;
  uint o = *q;
  while (v > as_float(o)) {
    uint prev = atomic_cmpxchg(q, o, as_uint(v));
    if (prev == o) break;
    o = prev;
  }
}
)";

inline constexpr const char* kCudaPrelude = R"(#define FS_FN static __device__ __forceinline__
#define FS_U32 unsigned int
#define FS_U16 unsigned short
#define FS_RINTF(x) rintf(x)
FS_FN float fs_bits2f(unsigned int b) { return __uint_as_float(b); }
FS_FN unsigned int fs_f2bits(float f) { return __float_as_uint(f); }
FS_FN void fs_atomic_add(int* p, int v) { atomicAdd(p, v); }
FS_FN void fs_atomic_max(int* p, int v) { atomicMax(p, v); }
FS_FN void fs_atomic_add(float* p, float v) { atomicAdd(p, v); }
FS_FN void fs_atomic_max(float* p, float v) {
  unsigned int* q = (unsigned int*)p;
  unsigned int o = *q;
  while (v > __uint_as_float(o)) {
    unsigned int prev = atomicCAS(q, o, __float_as_uint(v));
    if (prev == o) break;
    o = prev;
  }
}
)";

}  // namespace flagstone::compiler
