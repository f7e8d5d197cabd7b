// Run-time detection of the cpu kernels' instruction set (flagstone/runtime/cpu_features.h).
#include "flagstone/runtime/cpu_features.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string_view>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define FS_CPU_X86 1
#endif

namespace flagstone::runtime {
namespace {

CpuIsa detect() {
#ifdef FS_CPU_X86
  // F16C through cpuid: clang's __builtin_cpu_supports does not know that feature name. The
  // builtin checks that the OS saves the ymm/zmm state for the AVX levels.
  unsigned a = 0, b = 0, c = 0, d = 0;
  const bool f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
  if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c))
    return CpuIsa::kBaseline;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    return CpuIsa::kAvx512;
  return CpuIsa::kAvx2;
#else
  return CpuIsa::kBaseline;
#endif
}

}  // namespace

CpuIsa cpu_isa() {
  static const CpuIsa isa = [] {
    CpuIsa found = detect();
    const char* cap = std::getenv("FLAGSTONE_CPU_ISA");
    if (cap == nullptr) return found;
    std::string_view want(cap);
    CpuIsa limit = CpuIsa::kAvx512;
    if (want == "baseline") {
      limit = CpuIsa::kBaseline;
    } else if (want == "avx2") {
      limit = CpuIsa::kAvx2;
    } else if (want != "avx512") {
      // Decided inside the first kernel call, which must not fail over a tuning variable: say
      // so once and use what the CPU has.
      std::fprintf(stderr,
                   "flagstone: FLAGSTONE_CPU_ISA='%s' is not one of baseline, avx2, avx512; "
                   "ignored (the cpu kernels use %s)\n",
                   cap, cpu_isa_name(found));
    }
    return found < limit ? found : limit;
  }();
  return isa;
}

const char* cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAvx2:
      return "avx2";
    case CpuIsa::kAvx512:
      return "avx512";
    default:
      return "baseline";
  }
}

size_t last_level_cache_bytes() {
#ifdef _SC_LEVEL3_CACHE_SIZE  // glibc
  const long bytes = sysconf(_SC_LEVEL3_CACHE_SIZE);
  return bytes > 0 ? static_cast<size_t>(bytes) : 0;
#else
  return 0;
#endif
}

}  // namespace flagstone::runtime
