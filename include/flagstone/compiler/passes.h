// Optimization passes over the kernel IR. Each returns how many ops it changed; optimize()
// runs them to a fixed point, chooses the layout and re-verifies.
#pragma once

#include "flagstone/compiler/ir.h"

namespace flagstone::compiler::passes {

// Evaluates ops whose operands are all constants (scalars or splats) and applies identities
// that are exact for every input (x*1, integer x+0, and(x,true), select on a constant...).
int fold_constants(ir::Function& fn);
// Replaces a pure op identical to an earlier one in scope (same kind, operands, attributes and
// types) by that op's results. Loads are not merged: a store may sit between them.
int eliminate_common_subexpressions(ir::Function& fn);
// Removes pure ops whose results are unused (loads included, stores and atomics never).
int eliminate_dead_code(ir::Function& fn);
// Proves masks all-true or all-false from integer value ranges (arange bounds, constant
// meta-parameters, loop bounds, remainders) and drops or folds them: a store with an
// all-false mask disappears, a load with an all-true mask loses its mask and fill value.
int simplify_masks(ir::Function& fn);
// Computes how many consecutive elements each load/store touches along the last dim and
// records it as the op's vector width attribute, which targets use for wide accesses.
int choose_layout(ir::Function& fn);
// All of the above; the result is verified.
void optimize(ir::Function& fn);

// Rewrites every use of `from` (nested bodies and yields included) to `to`.
void replace_uses(ir::Block& block, ir::ValueId from, ir::ValueId to);

}  // namespace flagstone::compiler::passes
