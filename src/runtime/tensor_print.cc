// Readable printing of tensors in PyTorch's style: nested brackets, one number format per
// tensor, and "..." past the element budget (three edge items per dim).
#include <cmath>
#include <cstdio>
#include <sstream>

#include "flagstone/runtime/tensor.h"

namespace flagstone {
namespace {

constexpr int64_t kEdgeItems = 3;

struct Format {
  bool is_float = false;
  bool is_bool = false;
  bool integral_floats = false;  // all finite values are whole numbers: print "3."
  bool scientific = false;
};

Format choose_format(const std::vector<double>& values, DType dtype) {
  Format f;
  f.is_bool = dtype == DType::kBool;
  f.is_float = is_floating(dtype);
  if (!f.is_float) return f;
  double max_abs = 0, min_abs = INFINITY;
  bool integral = true;
  for (double v : values) {
    if (!std::isfinite(v)) continue;
    double a = std::fabs(v);
    max_abs = std::max(max_abs, a);
    if (a > 0) min_abs = std::min(min_abs, a);
    if (v != std::floor(v)) integral = false;
  }
  f.integral_floats = integral && max_abs < 1e8;
  f.scientific =
      !f.integral_floats && (max_abs >= 1e8 || (min_abs < 1e-4 && max_abs > 0) ||
                             (max_abs / std::max(min_abs, 1e-300) > 1e3 && max_abs >= 1e3));
  return f;
}

std::string format_value(double v, const Format& f) {
  char text[64];
  if (f.is_bool) return v != 0 ? "True" : "False";
  if (!f.is_float) {
    std::snprintf(text, sizeof(text), "%.0f", v);
    return text;
  }
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (f.integral_floats) {
    std::snprintf(text, sizeof(text), "%.0f.", v);
  } else if (f.scientific) {
    std::snprintf(text, sizeof(text), "%.4e", v);
  } else {
    std::snprintf(text, sizeof(text), "%.4f", v);
  }
  return text;
}

// Logical indices to print along one dim: all, or the first and last kEdgeItems.
std::vector<int64_t> shown_indices(int64_t size, bool summarize) {
  std::vector<int64_t> out;
  if (!summarize || size <= 2 * kEdgeItems) {
    for (int64_t i = 0; i < size; ++i) out.push_back(i);
  } else {
    for (int64_t i = 0; i < kEdgeItems; ++i) out.push_back(i);
    out.push_back(-1);  // the "..." marker
    for (int64_t i = size - kEdgeItems; i < size; ++i) out.push_back(i);
  }
  return out;
}

void print_dim(std::ostringstream& out, const Tensor& host, const Format& f, int dim,
               int64_t offset, bool summarize, int indent) {
  const auto& shape = host.shape();
  const auto& strides = host.strides();
  const void* data = host.host_data();
  out << "[";
  auto indices = shown_indices(shape[dim], summarize);
  for (size_t k = 0; k < indices.size(); ++k) {
    if (k > 0) {
      out << ",";
      if (dim + 1 < host.dim()) {
        out << std::string(static_cast<size_t>(host.dim() - dim - 1), '\n')
            << std::string(static_cast<size_t>(indent + 1), ' ');
      } else {
        out << " ";
      }
    }
    if (indices[k] < 0) {
      out << "...";
      continue;
    }
    int64_t element = offset + indices[k] * strides[dim];
    if (dim + 1 == host.dim()) {
      out << format_value(load_as_double(data, host.dtype(), element - host.offset()), f);
    } else {
      print_dim(out, host, f, dim + 1, element, summarize, indent + 1);
    }
  }
  out << "]";
}

}  // namespace

std::string Tensor::to_string(int64_t max_elements) const {
  if (!defined()) return "tensor(undefined)";
  std::ostringstream out;
  std::string suffix =
      ", dtype=" + std::string(dtype_name(dtype_)) + ", device=" + device().spec() + ")";
  if (is_quantized(dtype_)) {
    out << "tensor(<" << numel() << " block-quantized values, shape=" << shape_to_string(shape_)
        << ">" << suffix;
    return out.str();
  }
  Tensor host = contiguous().to(Device());
  std::vector<double> values = host.to_double_vector();
  Format f = choose_format(values, dtype_);
  out << "tensor(";
  if (dim() == 0) {
    out << format_value(values.empty() ? 0.0 : values[0], f);
  } else {
    print_dim(out, host, f, 0, host.offset(), numel() > max_elements, 7);
  }
  out << suffix;
  return out.str();
}

std::ostream& operator<<(std::ostream& out, const Tensor& tensor) {
  return out << tensor.to_string();
}

}  // namespace flagstone
