// Shared helpers of the ops tests (see ops_test_util.h).
#include "ops/ops_test_util.h"

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <sstream>

namespace flagstone::ops::testing {

Tolerance tolerance(DType dtype, int64_t reduction_length) {
  double scale = std::sqrt(static_cast<double>(std::max<int64_t>(reduction_length, 1)));
  switch (dtype) {
    case DType::kF64:
      return {1e-10, 1e-12 * scale};
    case DType::kF32:
      return {2e-5, 1e-6 * scale};
    case DType::kF16:
      return {2e-3, 1e-4 * scale};  // 2 ulp of 2^-10
    case DType::kBF16:
      return {1.6e-2, 1e-3 * scale};  // 2 ulp of 2^-7
    default:
      return {0, 0};  // integers and bool: exact
  }
}

Tensor make_tensor(const std::vector<double>& values, const Shape& shape, DType dtype,
                   const Device& device) {
  Tensor host = Tensor::empty(shape, dtype);
  FS_ASSERT(static_cast<int64_t>(values.size()) == host.numel());
  std::vector<std::byte> bytes(host.nbytes());
  for (size_t i = 0; i < values.size(); ++i) {
    double v = values[i];
    if (!is_floating(dtype) && dtype != DType::kBool) v = std::trunc(v);
    store_from_double(bytes.data(), dtype, static_cast<int64_t>(i), v);
  }
  if (!bytes.empty()) host.copy_from_host(bytes.data(), bytes.size());
  return device.is_cpu() ? host : host.to(device);
}

void poison(Tensor& t) {
  if (t.defined()) t.fill_bytes_(0xFF);
}

std::string compare(const Tensor& actual, const Tensor& expected, const Tolerance& tol) {
  std::ostringstream out;
  if (actual.shape() != expected.shape() || actual.dtype() != expected.dtype()) {
    out << "got " << actual.describe() << ", expected " << expected.describe();
    return out.str();
  }
  auto a = actual.to_double_vector(), e = expected.to_double_vector();
  bool exact = !is_floating(actual.dtype());
  for (size_t i = 0; i < a.size(); ++i) {
    double x = a[i], y = e[i];
    bool ok;
    if (std::isnan(y) || std::isnan(x))
      ok = std::isnan(x) && std::isnan(y);
    else if (std::isinf(y) || std::isinf(x))
      ok = x == y;
    else if (exact)
      ok = x == y;
    else
      ok = std::fabs(x - y) <= tol.atol + tol.rtol * std::fabs(y);
    if (!ok) {
      out.precision(9);
      out << "element " << i << " of " << actual.describe() << ": got " << x << ", expected " << y
          << " (rtol " << tol.rtol << ", atol " << tol.atol << ")";
      return out.str();
    }
  }
  return "";
}

uint64_t test_seed() {
  static const uint64_t seed = []() -> uint64_t {
    if (const char* s = std::getenv("FLAGSTONE_TEST_SEED")) return std::strtoull(s, nullptr, 10);
    return static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  }();
  return seed;
}

Tensor random_tensor(Rng& rng, const Shape& shape, DType dtype, const Device& device, double lo,
                     double hi, bool strided) {
  Shape storage = shape;
  if (strided && !storage.empty()) storage.back() *= 2;
  std::vector<double> values(static_cast<size_t>(shape_numel(storage)));
  for (auto& v : values) {
    if (dtype == DType::kBool)
      v = rng.integer(0, 1);
    else if (is_floating(dtype))
      v = rng.uniform(lo, hi);
    else
      v = static_cast<double>(rng.integer(static_cast<int64_t>(lo), static_cast<int64_t>(hi)));
  }
  Tensor t = make_tensor(values, storage, dtype, device);
  if (strided && !shape.empty()) t = t.slice(t.dim() - 1, 0, storage.back(), 2);
  return t;
}

}  // namespace flagstone::ops::testing
