// A separate process for the compile-cache test: launches one small kernel on every device with
// a compiler target, checks the result, and prints how many toolchain runs it needed.
#include <cstdio>
#include <vector>

#include "flagstone/base/error.h"
#include "flagstone/compiler/kernel.h"
#include "flagstone/runtime/tensor.h"

using namespace flagstone;
using namespace flagstone::compiler;

int main() {
  try {
    Kernel axpb("cache_probe",
                [](KernelBuilder& k) {
                  int64_t block = k.meta("BLOCK");
                  Value x = k.pointer_arg("x", DType::kF32);
                  Value y = k.pointer_arg("y", DType::kF32);
                  Value n = k.scalar_arg("n", DType::kI32);
                  Value offs = k.program_id(0) * block + k.arange(0, block);
                  k.store(y + offs, k.load(x + offs, offs < n, 0.0f) * 2 + 1, offs < n);
                },
                {Config{{"BLOCK", 32}, {"num_warps", 1}}});
    int devices = 0;
    for (const Device& d : runtime::all_devices()) {
      try {
        target_for(d.backend());
      } catch (const Error&) {
        continue;
      }
      ++devices;
      const int64_t n = 45;
      std::vector<float> host(n);
      for (int64_t i = 0; i < n; ++i) host[static_cast<size_t>(i)] = static_cast<float>(i) * 0.25f;
      Tensor x = Tensor::from_vector(host, {n}, d);
      Tensor y = Tensor::empty({n}, DType::kF32, d);
      axpb.launch(Stream::default_stream(d), (n + 31) / 32, {x, y, n});
      std::vector<float> out = y.to_vector<float>();
      for (int64_t i = 0; i < n; ++i) {
        if (out[static_cast<size_t>(i)] != host[static_cast<size_t>(i)] * 2 + 1) {
          std::printf("wrong result on %s at %ld\n", d.spec().c_str(), static_cast<long>(i));
          return 1;
        }
      }
    }
    std::printf("devices=%d invocations=%ld\n", devices, static_cast<long>(compiler_invocations()));
    return 0;
  } catch (const Error& e) {
    std::printf("error: %s\n", e.what());
    return 1;
  }
}
