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
      EXPECT_LE(shared, 48 * 1024);
      // sm_80 for every kernel; sm_90 once, to cover the other architecture we ship for.
      EXPECT_FALSE(cuda::nvrtc_compile(source, tk.name, 80).empty());
      if (tk.name == "matmul" && i == 2) {
        EXPECT_FALSE(cuda::nvrtc_compile(source, tk.name, 90).empty());
      }
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
