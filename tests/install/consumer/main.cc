// Uses the installed headers and library: a tensor round trip through a transposed copy.
#include <flagstone/runtime/tensor.h>
#include <flagstone/version.h>

#include <cstdio>

int main() {
  using namespace flagstone;
  Tensor x = Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
  std::vector<float> t = x.t().contiguous().to_vector<float>();
  if (t != std::vector<float>{1, 4, 2, 5, 3, 6}) return 1;
  std::printf("consumer ok: %zu elements (flagstone %s)\n", t.size(), FLAGSTONE_VERSION);
  return 0;
}
