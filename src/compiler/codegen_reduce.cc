// Reductions for the source emitter. On GPUs a reduction is a tree: each thread
// folds the elements it owns, then warps combine with shuffles (CUDA) or the work-group with
// a shared-memory tree (OpenCL); the cpu folds serially and lets the compiler vectorize.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "codegen_emitter.h"
#include "flagstone/base/error.h"

namespace flagstone::compiler {

namespace {

bool is_arg(OpKind k) {
  return k == OpKind::kArgMax || k == OpKind::kArgMin;
}

int64_t pow2_floor(int64_t v) {
  int64_t p = 1;
  while (p * 2 <= v) p *= 2;
  return p;
}

int64_t pow2_ceil(int64_t v) {
  int64_t p = 1;
  while (p < v) p *= 2;
  return p;
}

}  // namespace

std::string Emitter::scratch_array(const std::string& type, int64_t count, int64_t elem_size,
                                   int64_t* cursor) {
  std::string s = "s" + std::to_string(counter_++);
  line(local_q() + type + "* " + s + " = (" + local_q() + type + "*)(fs_scratch + " +
       std::to_string(*cursor) + ");");
  *cursor += (count * elem_size + 15) / 16 * 16;
  scratch_max_ = std::max(scratch_max_, *cursor);
  return s;
}

// The neutral element of a reduction, so threads that own no element take part harmlessly.
std::string Emitter::reduce_identity(OpKind kind, DType d) const {
  if (kind == OpKind::kReduceSum) return literal(d, 0, 0);
  bool up = kind == OpKind::kReduceMin || kind == OpKind::kArgMin;
  if (is_floating(d)) return literal(d, up ? INFINITY : -INFINITY, 0);
  int64_t lo = 0, hi = 0;
  switch (d) {
    case DType::kI64:
      lo = INT64_MIN, hi = INT64_MAX;
      break;
    case DType::kI32:
      lo = INT32_MIN, hi = INT32_MAX;
      break;
    case DType::kI16:
      lo = INT16_MIN, hi = INT16_MAX;
      break;
    case DType::kI8:
      lo = INT8_MIN, hi = INT8_MAX;
      break;
    default:  // u8, bool
      lo = 0, hi = 255;
      break;
  }
  return literal(d, 0, up ? hi : lo);
}

// Folds candidate (x, xi) into (acc, idx); ties keep the lower index, so argmax/argmin return
// the first position whatever order the tree combines in.
std::string Emitter::reduce_step(OpKind kind, const std::string& x, const std::string& xi) const {
  switch (kind) {
    case OpKind::kReduceSum:
      return "acc += " + x + ";";
    case OpKind::kReduceMax:
      return "if (" + x + " > acc) acc = " + x + ";";
    case OpKind::kReduceMin:
      return "if (" + x + " < acc) acc = " + x + ";";
    case OpKind::kArgMax:
      return "if (" + x + " > acc || (" + x + " == acc && " + xi + " < idx)) { acc = " + x +
             "; idx = " + xi + "; }";
    default:
      return "if (" + x + " < acc || (" + x + " == acc && " + xi + " < idx)) { acc = " + x +
             "; idx = " + xi + "; }";
  }
}

// Butterfly over lanes `from`/2 ... 1 of each warp (CUDA): every lane ends with the result.
void Emitter::shuffle_combine(OpKind kind, DType d, int64_t from) {
  std::string acc_t = ct(d);
  bool narrow = dtype_size(d) < 4;
  std::string shuffled = narrow ? "(" + acc_t + ")__shfl_xor_sync(0xffffffffu, (int)acc, o)"
                                : "__shfl_xor_sync(0xffffffffu, acc, o)";
  open("for (int o = " + std::to_string(from / 2) + "; o > 0; o >>= 1)");
  line("const " + acc_t + " x = " + shuffled + ";");
  if (is_arg(kind)) line("const int xi = __shfl_xor_sync(0xffffffffu, idx, o);");
  line(reduce_step(kind, "x", "xi"));
  close();
}

void Emitter::reduce(const Op& op) {
  const Type& src = fn_.type(op.operands[0]);
  const Type& dst = fn_.type(op.results[0]);
  int64_t outputs = dst.numel();
  bool warps = d_ == Dialect::kCuda && threads_ % 32 == 0;
  if (gpu() && outputs == 1) return reduce_all(op);
  if (warps && outputs < threads_ && pow2_floor(threads_ / outputs) >= 2)
    return reduce_grouped(op, std::min<int64_t>(32, pow2_floor(threads_ / outputs)));
  (void)src;
  reduce_serial(op);
}

// A reduction of the whole tile to one value.
void Emitter::reduce_all(const Op& op) {
  const Type& src = fn_.type(op.operands[0]);
  const Type& dst = fn_.type(op.results[0]);
  ValueId res = op.results[0];
  std::string acc_t = ct(src.dtype);
  std::string identity = reduce_identity(op.kind, src.dtype);
  declare(res);
  open("");
  line(acc_t + " acc = " + identity + ";");
  line("int idx = 2147483647; (void)idx;");
  begin_elems(src);
  line(reduce_step(op.kind, name(op.operands[0]) + "[j]", "f"));
  end_elems(src);
  int64_t cursor = 0;
  if (d_ == Dialect::kCuda && threads_ % 32 == 0) {
    shuffle_combine(op.kind, src.dtype, 32);
    if (threads_ > 32) {
      // One value per warp through shared memory; every warp then folds all of them, so
      // all threads hold the result without another barrier.
      int64_t w = threads_ / 32;
      barrier();
      std::string sv = scratch_array(acc_t, w, storage_size(src.dtype) < 4 ? 4 : 8, &cursor);
      std::string si = scratch_array("int", w, 4, &cursor);
      line("if ((fs_tid & 31) == 0) { " + sv + "[fs_tid >> 5] = acc; " + si +
           "[fs_tid >> 5] = idx; }");
      barrier();
      // Each group of P lanes (P = w rounded up to a power of two) reads all w values, so the
      // butterfly over P lanes leaves the result in every lane, not only in the first group.
      int64_t p = pow2_ceil(w);
      std::string slot = "(fs_tid & " + std::to_string(p - 1) + ")";
      line("acc = " + slot + " < " + std::to_string(w) + " ? " + sv + "[" + slot +
           "] : " + identity + ";");
      line("idx = " + slot + " < " + std::to_string(w) + " ? " + si + "[" + slot +
           "] : 2147483647;");
      shuffle_combine(op.kind, src.dtype, p);
    }
  } else {
    barrier();
    std::string sv = scratch_array(acc_t, threads_, 8, &cursor);
    std::string si = scratch_array("int", threads_, 4, &cursor);
    line(sv + "[fs_tid] = acc;");
    line(si + "[fs_tid] = idx;");
    barrier();
    open("for (int st = " + std::to_string(pow2_ceil(threads_) / 2) + "; st > 0; st >>= 1)");
    open("if (fs_tid < st && fs_tid + st < " + std::to_string(threads_) + ")");
    line("acc = " + sv + "[fs_tid]; idx = " + si + "[fs_tid];");
    line(reduce_step(op.kind, sv + "[fs_tid + st]", si + "[fs_tid + st]"));
    line(sv + "[fs_tid] = acc; " + si + "[fs_tid] = idx;");
    close();
    barrier();
    close();
    line("acc = " + sv + "[0]; idx = " + si + "[0];");
  }
  std::string value = is_arg(op.kind) ? std::string("idx") : wrap(dst.dtype, "acc");
  if (dst.is_tile()) {
    begin_elems(dst);
    line(name(res) + "[j] = " + value + ";");
    end_elems(dst);
  } else {
    line(name(res) + " = " + value + ";");
  }
  close();
}

// Fewer outputs than threads (CUDA): groups of `group` lanes share one output, each lane
// folding a strided part of the reduced axis, then a shuffle butterfly inside the group.
void Emitter::reduce_grouped(const Op& op, int64_t group) {
  const Type& src = fn_.type(op.operands[0]);
  const Type& dst = fn_.type(op.results[0]);
  int64_t axis = op.attrs[0];
  int64_t r = src.shape[static_cast<size_t>(axis)];
  int64_t inner = 1;
  for (int i = static_cast<int>(axis) + 1; i < src.rank(); ++i) inner *= src.shape[i];
  int64_t outputs = dst.numel();
  int64_t groups = threads_ / group;
  bool arg = is_arg(op.kind);
  std::string acc_t = ct(src.dtype);
  std::string g = std::to_string(group);
  std::string in = std::to_string(inner);
  int64_t cursor = 0;
  barrier();
  std::string s = materialize(op.operands[0], &cursor);
  std::string rs = scratch_array(arg ? "int" : acc_t, outputs, 8, &cursor);
  barrier();
  open("");
  line("const int grp = fs_tid / " + g + ", lane = fs_tid % " + g + ";");
  open("for (int q = 0; q < " + std::to_string((outputs + groups - 1) / groups) + "; ++q)");
  line("const int o = grp + q * " + std::to_string(groups) + ";");
  line(acc_t + " acc = " + reduce_identity(op.kind, src.dtype) + ";");
  line("int idx = 2147483647; (void)idx;");
  open("if (o < " + std::to_string(outputs) + ")");
  line("const int base = (o / " + in + ") * " + std::to_string(r * inner) + " + o % " + in + ";");
  open("for (int rr = lane; rr < " + std::to_string(r) + "; rr += " + g + ")");
  line(reduce_step(op.kind, s + "[base + rr * " + in + "]", "rr"));
  close();
  close();
  shuffle_combine(op.kind, src.dtype, group);
  line("if (lane == 0 && o < " + std::to_string(outputs) + ") " + rs +
       "[o] = " + (arg ? "idx" : "acc") + ";");
  close();
  close();
  barrier();
  declare(op.results[0]);
  begin_elems(dst);
  line(name(op.results[0]) + "[j] = " + (arg ? rs + "[f]" : wrap(dst.dtype, rs + "[f]")) + ";");
  end_elems(dst);
}

// Each thread computes whole outputs serially (the cpu, and GPU reductions with as many
// outputs as threads).
void Emitter::reduce_serial(const Op& op) {
  const Type& src = fn_.type(op.operands[0]);
  const Type& dst = fn_.type(op.results[0]);
  int64_t axis = op.attrs[0];
  int64_t r = src.shape[static_cast<size_t>(axis)];
  int64_t inner = 1;
  for (int i = static_cast<int>(axis) + 1; i < src.rank(); ++i) inner *= src.shape[i];
  int64_t cursor = 0;
  barrier();
  std::string s = materialize(op.operands[0], &cursor);
  barrier();
  ValueId res = op.results[0];
  bool arg = is_arg(op.kind);
  std::string acc_t = ct(src.dtype);
  auto body = [&](const std::string& out_index, const std::string& target) {
    std::string in = std::to_string(inner);
    line("const int o = " + out_index + ";");
    line("const int base = (o / " + in + ") * " + std::to_string(r * inner) + " + o % " + in + ";");
    line(acc_t + " acc = " + s + "[base];");
    line("int idx = 0; (void)idx;");
    open("for (int r = 1; r < " + std::to_string(r) + "; ++r)");
    line(acc_t + " x = " + s + "[base + r * " + in + "];");
    switch (op.kind) {
      case OpKind::kReduceSum:
        line("acc += x;");
        break;
      case OpKind::kReduceMax:
        line("if (x > acc) acc = x;");
        break;
      case OpKind::kReduceMin:
        line("if (x < acc) acc = x;");
        break;
      case OpKind::kArgMax:
        line("if (x > acc) { acc = x; idx = r; }");
        break;
      default:
        line("if (x < acc) { acc = x; idx = r; }");
        break;
    }
    close();
    line(target + " = " + (arg ? std::string("idx") : wrap(dst.dtype, "acc")) + ";");
  };
  if (!dst.is_tile()) {
    declare(res);
    open("");
    body("0", name(res));
    close();
    return;
  }
  declare(res);
  begin_elems(dst);
  body("f", name(res) + "[j]");
  end_elems(dst);
}

}  // namespace flagstone::compiler
