// The counter-based random stream of every seeded op (rand, randn, dropout, sampling):
// Philox-4x32-10, so any device computes element i of a stream without state or ordering.
#pragma once

#include <cmath>
#include <cstdint>

namespace flagstone::ops {

struct Philox4x32 {
  uint32_t v[4];
};

// Philox-4x32 with 10 rounds (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3").
inline Philox4x32 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0,
                                uint32_t k1) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    uint64_t p0 = uint64_t{kMul0} * c0, p1 = uint64_t{kMul1} * c2;
    uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0, c1 = n1, c2 = n2, c3 = n3;
    k0 += kWeyl0, k1 += kWeyl1;
  }
  return {{c0, c1, c2, c3}};
}

// 32 random bits for element `index` of the stream (seed, offset): the counter is the block
// index/4 plus the offset, and the lane is index%4.
inline uint32_t random_bits(uint64_t seed, uint64_t offset, uint64_t index) {
  uint64_t block = index / 4;
  Philox4x32 r = philox4x32_10(static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32),
                               static_cast<uint32_t>(offset), static_cast<uint32_t>(offset >> 32),
                               static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  return r.v[index % 4];
}

// Uniform in [0, 1) with 24 random bits, exactly representable in f32.
inline float random_uniform(uint64_t seed, uint64_t offset, uint64_t index) {
  return static_cast<float>(random_bits(seed, offset, index) >> 8) * (1.0f / 16777216.0f);
}

// Standard normal by Box-Muller over the pair (2*(index/2), 2*(index/2)+1): even indices take
// the cosine branch, odd ones the sine branch. Computed in double so devices agree to rounding.
inline double random_normal(uint64_t seed, uint64_t offset, uint64_t index) {
  uint64_t pair = index / 2 * 2;
  double u1 = (static_cast<double>(random_bits(seed, offset, pair) >> 8) + 1.0) / 16777216.0;
  double u2 = static_cast<double>(random_bits(seed, offset, pair + 1) >> 8) / 16777216.0;
  double r = std::sqrt(-2.0 * std::log(u1));
  double angle = 2.0 * 3.14159265358979323846 * u2;
  return index % 2 == 0 ? r * std::cos(angle) : r * std::sin(angle);
}

// Integer in [low, high) by multiply-shift over 32 bits, for ranges up to 2^32.
inline int64_t random_int(uint64_t seed, uint64_t offset, uint64_t index, int64_t low,
                          int64_t high) {
  uint64_t range = static_cast<uint64_t>(high - low);
  return low + static_cast<int64_t>((uint64_t{random_bits(seed, offset, index)} * range) >> 32);
}

}  // namespace flagstone::ops
