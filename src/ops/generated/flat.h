// Flat kernels: each program takes BLOCK consecutive elements of an iteration shape seen with
// kFlatRank dims and finds their coordinates; the data-movement and factory kernels use them.
#pragma once

#include <array>
#include <functional>
#include <string>
#include <vector>

#include "generated/gen_common.h"

namespace flagstone::ops::gen {

inline constexpr int kFlatRank = 4;
using Coords = std::array<Value, kFlatRank>;

// The BLOCK (the "BLOCK" meta-parameter) consecutive flat element offsets this program takes,
// and which of them are below n.
struct FlatBlock {
  Value offs, in_range;
};
FlatBlock flat_block(KernelBuilder& k, Value n);
// Coordinates of the flat element offsets `offs` over the sizes of `shape`.
Coords flat_coords(Value offs, const TensorArg& shape);
// Element offset of the coordinates `c` in `t` (its strides).
Value flat_offset(const Coords& c, const TensorArg& t);
// `t` with leading size-1 dims (stride 0) up to kFlatRank.
Tensor to_flat_rank(const Tensor& t);
// Empty when every tensor of the call has at most kFlatRank dims, else the reason.
std::string flat_rank_check(const KernelArgs& args);

// Builds the kernel under `key` once (with `config`, whose BLOCK elements each program takes)
// and launches it over n elements on `device`.
void launch_flat(std::string_view op, const std::string& key,
                 const std::function<void(KernelBuilder&)>& build, const Config& config,
                 const Device& device, int64_t n, const std::vector<compiler::Arg>& args);

}  // namespace flagstone::ops::gen
