// NVRTC opened at run time with dlopen (libnvrtc.so.13, .12, ...), so the library starts on
// machines without the CUDA toolkit; compiles CUDA C++ to a cubin for one architecture.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace flagstone::compiler::cuda {

// True when libnvrtc could be opened; otherwise `why` says what was tried.
bool nvrtc_available(std::string* why = nullptr);
// "13.0" (major.minor of the loaded NVRTC); throws kUnsupported when NVRTC is missing.
std::string nvrtc_version();
// True when a sm_90 kernel must be built for sm_90a (it uses warpgroup MMA).
bool needs_arch_specific(const std::string& source);
// Compiles `source` for sm_<arch> (e.g. 80; 90 means sm_90a for kernels that need it, see
// needs_arch_specific) and returns the cubin. Throws kBackend
// with NVRTC's log naming `kernel` when compilation fails, kUnsupported when NVRTC is missing. With
// `info`, ptxas also reports registers, shared memory and spills per function there.
std::vector<uint8_t> nvrtc_compile(const std::string& source, const std::string& kernel, int arch,
                                   std::string* info = nullptr);

}  // namespace flagstone::compiler::cuda
