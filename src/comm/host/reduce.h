// Element-wise reduction kernels of the host transport for every comm datatype and operation;
// f16/bf16 are widened to f32, integers wrap on overflow like NCCL's.
#pragma once

#include <cstddef>

#include "flagstone/comm.h"

namespace flagstone::comm {

// acc[i] = acc[i] op in[i] for i < count; fsAvg accumulates a sum (see finish_average).
void reduce_into(void* acc, const void* in, size_t count, fsDataType_t dtype, fsRedOp_t op);
// out[i] = a[i] op b[i]; out may alias a or b.
void reduce_pair(void* out, const void* a, const void* b, size_t count, fsDataType_t dtype,
                 fsRedOp_t op);
// Divides a sum by nranks for fsAvg (integers truncate toward zero).
void finish_average(void* data, size_t count, fsDataType_t dtype, int nranks);

}  // namespace flagstone::comm
