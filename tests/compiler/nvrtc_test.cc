// The CUDA codegen is valid CUDA: every test kernel's generated source compiles with NVRTC to a
// cubin for sm_80 and sm_90, here even without a GPU. Skipped when libnvrtc is absent.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "codegen.h"
#include "compiler/test_kernels.h"
#include "cuda/nvrtc.h"
#include "flagstone/base/error.h"
#include "flagstone/compiler/kernel.h"

namespace flagstone::compiler::testing {
namespace {

TEST(CompilerNvrtc, EveryTestKernelCompilesToCubin) {
  std::string why;
  if (!cuda::nvrtc_available(&why)) GTEST_SKIP() << why;
  for (const auto& tk : all_test_kernels()) {
    Kernel kernel(tk.name, tk.build, tk.configs);
    for (size_t i = 0; i < tk.configs.size(); ++i) {
      SCOPED_TRACE(tk.name + " {" + tk.configs[i].str() + "}");
      ir::Function fn = kernel.optimized(tk.configs[i]);
      int64_t shared = 0;
      std::string source = emit_source(fn, Dialect::kCuda, fn.num_warps() * 32, &shared);
      // The warpgroup-sized gemm tiles take dynamic shared memory beyond 48 KiB.
      if (tk.name != "gemm" || i < 3) {
        EXPECT_LE(shared, 48 * 1024);
      }
      // sm_80 for every kernel; sm_90 once, to cover the other architecture we ship for.
      // (The warpgroup-sized gemm tiles are compiled for sm_90 by the next test.)
      if (tk.name == "gemm" && i >= 3) continue;
      EXPECT_FALSE(cuda::nvrtc_compile(source, tk.name, 80).empty());
      if (tk.name == "matmul" && i == 2) {
        EXPECT_FALSE(cuda::nvrtc_compile(source, tk.name, 90).empty());
      }
    }
  }
}

// On sm_90 the GEMM K loops of warpgroup-sized tiles become wgmma reading shared memory; the
// source builds for sm_90a with its accumulators in registers (no spills), and other
// architectures and tiles keep mma.sync.
TEST(CompilerNvrtc, HopperGemmUsesWarpgroupMmaWithoutSpills) {
  std::string why;
  if (!cuda::nvrtc_available(&why)) GTEST_SKIP() << why;
  for (const auto& tk : all_test_kernels()) {
    if (tk.name != "gemm") continue;
    Kernel kernel(tk.name, tk.build, tk.configs);
    for (size_t i = 0; i < tk.configs.size(); ++i) {
      SCOPED_TRACE("gemm {" + tk.configs[i].str() + "}");
      ir::Function fn = kernel.optimized(tk.configs[i]);
      int64_t shared = 0;
      std::string source = emit_source(fn, Dialect::kCuda, fn.num_warps() * 32, &shared, 90);
      bool hopper = i >= 3;
      EXPECT_EQ(source.find("wgmma.mma_async") != std::string::npos, hopper);
      EXPECT_EQ(source.find("mma.sync.aligned") != std::string::npos, !hopper);
      // TMA is the default of the wgmma lowering; tma=0 keeps the cp.async copies.
      bool tma = hopper && !(tk.configs[i].has("tma") && tk.configs[i].get("tma") == 0);
      EXPECT_EQ(source.find("cp.async.bulk.tensor") != std::string::npos, tma);
      if (!hopper) continue;
      std::string generic = emit_source(fn, Dialect::kCuda, fn.num_warps() * 32, &shared, 80);
      EXPECT_EQ(generic.find("wgmma"), std::string::npos);
      std::string info;
      EXPECT_FALSE(cuda::nvrtc_compile(source, tk.name, 90, &info).empty());
      EXPECT_THAT(info, ::testing::HasSubstr("sm_90a"));
      EXPECT_THAT(info, ::testing::HasSubstr("0 bytes spill stores"));
      EXPECT_THAT(info, ::testing::Not(::testing::HasSubstr("serialized")));
      if (::testing::Test::HasFailure()) ADD_FAILURE() << info;
    }
  }
}

TEST(CompilerNvrtc, CompileErrorsCarryTheLog) {
  std::string why;
  if (!cuda::nvrtc_available(&why)) GTEST_SKIP() << why;
  try {
    cuda::nvrtc_compile("extern \"C\" __global__ void fs_kernel() { undeclared(); }", "broken", 80);
    FAIL() << "NVRTC accepted invalid code";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kBackend);
    EXPECT_THAT(e.message(), ::testing::HasSubstr("kernel 'broken'"));
    EXPECT_THAT(e.message(), ::testing::HasSubstr("undeclared"));
  }
}

}  // namespace
}  // namespace flagstone::compiler::testing
