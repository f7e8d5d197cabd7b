// Which vector instruction set the cpu kernels may use on this host, decided once at run time
// (the library is built for baseline x86-64 and carries wider code paths beside the portable ones),
// and the host's last-level cache, which benchmarks must exceed to measure memory.
#pragma once

#include <cstddef>

namespace flagstone::runtime {

// Ordered: each level includes the ones before it.
enum class CpuIsa {
  kBaseline,  // the build's own ISA (portable loops)
  kAvx2,      // AVX2 + FMA + F16C
  kAvx512,    // the above + AVX-512 F, BW, VL, DQ (with the OS saving the zmm state)
};

// The widest level this CPU supports, capped by FLAGSTONE_CPU_ISA=baseline|avx2|avx512 when set
// (tests run the narrower paths on a wide machine that way). Off x86: kBaseline.
CpuIsa cpu_isa();

// "baseline", "avx2" or "avx512".
const char* cpu_isa_name(CpuIsa isa);

// Bytes of the host's last-level (L3) cache as the C library reports it; 0 when unknown.
size_t last_level_cache_bytes();

}  // namespace flagstone::runtime
