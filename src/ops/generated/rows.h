// Row-shaped views for generated row kernels (softmax, norms, cross_entropy): every tensor of
// the row's shape seen as [k0, k1, k2, N] with the row dim last and the kept dims collapsed.
#pragma once

#include <string>
#include <vector>

#include "generated/gen_common.h"

namespace flagstone::ops::gen {

struct RowViews {
  std::vector<Tensor> views;  // [k0, k1, k2, N] views of the given tensors
  int64_t rows = 0;
  int64_t n = 0;
  bool unit = false;  // every view steps along the row by one element
};

// `tensors` share one shape; `dim` is the row dim. Throws kUnsupported naming `op` when the
// kept dims do not collapse to three.
RowViews row_views(std::string_view op, const std::vector<Tensor>& tensors, int dim);

// Tile configs: rows of short length share a program (BM rows), long rows get one each.
Config row_config(int64_t n);
std::vector<Config> row_configs();

// Whether a row kernel may take its row views' and 1-d operands' (weights) steps along the row
// as one element: those kernels index without a multiply per element, and the code generator
// turns their loads and stores into vector accesses (keyed apart from the strided ones).
bool unit_rows(const RowViews& v, const std::vector<Tensor>& vectors = {});

// The per-program geometry of a row kernel: BM rows, [BM, BN] tiles along the row.
struct RowGeometry {
  KernelBuilder& k;
  int64_t bm = 0, bn = 0;
  bool unit = false;  // see unit_rows
  Value rows, rmask, k0, k1, k2, n;

  RowGeometry(KernelBuilder& builder, const TensorArg& x, bool unit_steps = false);
  // Element pointers of the [BM, BN] tile at `cols` ([BN] column indices) of a row view.
  Value ptrs(const TensorArg& t, const Value& cols) const;
  // Element pointers at `cols` of a 1-d operand along the row (a norm's weight or bias).
  Value vector_ptrs(const TensorArg& t, const Value& cols) const {
    return unit ? t.ptr + cols : t.ptr + cols * t.stride(0);
  }
  Value valid(const Value& cols) const { return rmask.col() & (cols.row() < n); }
  // Pointers of one element per row (a [BM] tile) of a [k0, k1, k2] view.
  Value row_ptrs(const TensorArg& t) const;
  // for_range over the row's column blocks.
  std::vector<Value> loop(
      std::vector<Value> init,
      const std::function<std::vector<Value>(Value cols, std::vector<Value>)>& body) const;
};

}  // namespace flagstone::ops::gen
