// Attention: scaled_dot_product_attention (causal or masked, GQA/MQA, prefill and decode over
// a KV cache) and paged attention over a block table; schemas and float64 references.
#include <cmath>
#include <functional>
#include <memory>

#include "internal.h"
#include "reference/host.h"
#include "shape_rules.h"

namespace flagstone::ops {
namespace {

// One query row against keys [0, n): softmax(q.k * scale + bias) . v, in double. Keys with
// allowed[j] == false are skipped; a row with none allowed yields NaN, as torch does.
void attend_row(const double* q, int64_t d, int64_t dv, int64_t n, double scale,
                const std::function<const double*(int64_t)>& key,
                const std::function<const double*(int64_t)>& value,
                const std::function<double(int64_t)>& bias, double* out) {
  std::vector<double> s(static_cast<size_t>(n));
  double m = -INFINITY;
  for (int64_t j = 0; j < n; ++j) {
    const double* k = key(j);
    double dot = 0;
    for (int64_t i = 0; i < d; ++i) dot += q[i] * k[i];
    s[j] = dot * scale + bias(j);
    m = std::max(m, s[j]);
  }
  double total = 0;
  for (int64_t j = 0; j < n; ++j) total += s[j] = std::exp(s[j] - m);
  for (int64_t i = 0; i < dv; ++i) out[i] = 0;
  for (int64_t j = 0; j < n; ++j) {
    const double* v = value(j);
    double p = s[j] / total;
    for (int64_t i = 0; i < dv; ++i) out[i] += p * v[i];
  }
}

}  // namespace

void register_attention_ops(Registry& registry) {
  OpSchema s;
  s.name = "scaled_dot_product_attention";
  s.family = "attention";
  s.inputs = {"query", "key", "value", "mask?"};
  s.outputs = {"out"};
  s.attrs = {"causal=false scale=1/sqrt(head_dim) causal_alignment=top_left|bottom_right"};
  s.dtypes = kFloatTypes;
  s.doc =
      "softmax(q k^T * scale + mask) v over [batch, heads, len, dim]; key/value heads may divide "
      "query heads (GQA/MQA); a bool mask is true where attention is allowed";
  s.infer = [](const std::vector<Tensor>& in, const Attrs& attrs) {
    const Tensor &q = in[0], &k = in[1], &v = in[2];
    check_dtype_in(q, "query", kFloatTypes);
    check_same_dtype(q, "query", k, "key");
    check_same_dtype(q, "query", v, "value");
    check_ndim(q, "query", 4);
    check_ndim(k, "key", 4);
    check_ndim(v, "value", 4);
    FS_CHECK(k.size(0) == q.size(0) && v.size(0) == q.size(0), kInvalidArgument,
             "batch sizes differ: query ", q.describe(), ", key ", k.describe(), ", value ",
             v.describe());
    FS_CHECK(k.size(3) == q.size(3), kInvalidArgument, "key head_dim ", k.size(3),
             " differs from query head_dim ", q.size(3));
    FS_CHECK(v.size(2) == k.size(2) && v.size(1) == k.size(1), kInvalidArgument, "value ",
             v.describe(), " must match key ", k.describe(), " in heads and length");
    FS_CHECK(k.size(1) > 0 && q.size(1) % k.size(1) == 0, kInvalidArgument, "query heads ",
             q.size(1), " are not a multiple of key/value heads ", k.size(1));
    if (in.size() > 3 && in[3].defined()) {
      const Tensor& m = in[3];
      FS_CHECK(m.dtype() == DType::kBool || m.dtype() == q.dtype(), kInvalidArgument,
               "tensor 'mask' is ", m.describe(), "; expected bool or ", dtype_name(q.dtype()));
      Shape full{q.size(0), q.size(1), q.size(2), k.size(2)};
      FS_CHECK(broadcast_shapes(m.shape(), full) == full, kInvalidArgument, "mask ", m.describe(),
               " does not broadcast to ", shape_to_string(full));
      FS_CHECK(!attrs.get_bool("causal", false), kInvalidArgument,
               "pass either a mask or causal=true, not both");
    }
    std::string align = attrs.get_string("causal_alignment", "top_left");
    FS_CHECK(align == "top_left" || align == "bottom_right", kInvalidArgument, "causal_alignment='",
             align, "' (expected top_left or bottom_right)");
    return std::vector<OutputSpec>{{{q.size(0), q.size(1), q.size(2), v.size(3)}, q.dtype()}};
  };
  s.reference = [](KernelArgs& args) {
    const Tensor &q = args.inputs[0], &k = args.inputs[1], &v = args.inputs[2];
    bool has_mask = args.inputs.size() > 3 && args.inputs[3].defined();
    int64_t b = q.size(0), hq = q.size(1), lq = q.size(2), d = q.size(3);
    int64_t hk = k.size(1), lk = k.size(2), dv = v.size(3);
    double scale = args.attrs.get_double("scale", 1.0 / std::sqrt(static_cast<double>(d)));
    bool causal = args.attrs.get_bool("causal", false);
    int64_t shift =
        args.attrs.get_string("causal_alignment", "top_left") == "bottom_right" ? lk - lq : 0;
    auto qv = ref::load(q), kv = ref::load(k), vv = ref::load(v);
    std::vector<double> mask;
    Shape full{b, hq, lq, lk};
    std::unique_ptr<ref::BroadcastIndex> mi;
    bool bool_mask = false;
    if (has_mask) {
      mask = ref::load(args.inputs[3]);
      mi = std::make_unique<ref::BroadcastIndex>(args.inputs[3].shape(), full);
      bool_mask = args.inputs[3].dtype() == DType::kBool;
    }
    std::vector<double> out(static_cast<size_t>(b * hq * lq * dv));
    for (int64_t bi = 0; bi < b; ++bi)
      for (int64_t h = 0; h < hq; ++h) {
        int64_t kh = h / (hq / hk);
        for (int64_t i = 0; i < lq; ++i) {
          const double* qrow = &qv[((bi * hq + h) * lq + i) * d];
          auto key = [&](int64_t j) { return &kv[((bi * hk + kh) * lk + j) * d]; };
          auto value = [&](int64_t j) { return &vv[((bi * hk + kh) * lk + j) * dv]; };
          auto bias = [&](int64_t j) -> double {
            if (causal && j > i + shift) return -INFINITY;
            if (!has_mask) return 0.0;
            double m = mask[(*mi)(((bi * hq + h) * lq + i) * lk + j)];
            return bool_mask ? (m != 0 ? 0.0 : -INFINITY) : m;
          };
          attend_row(qrow, d, dv, lk, scale, key, value, bias, &out[((bi * hq + h) * lq + i) * dv]);
        }
      }
    ref::store(args.outputs[0], out);
  };
  registry.add_schema(std::move(s));

  OpSchema p;
  p.name = "paged_attention";
  p.family = "attention";
  p.inputs = {"query", "key_cache", "value_cache", "block_tables", "seq_lens"};
  p.outputs = {"out"};
  p.attrs = {"scale=1/sqrt(head_dim)"};
  p.dtypes = kFloatTypes;
  p.doc =
      "decode attention of one query per sequence [seqs, heads, dim] over a paged KV cache "
      "[blocks, block_size, kv_heads, dim]; token j of sequence s lives in block "
      "block_tables[s, j / block_size]";
  p.infer = [](const std::vector<Tensor>& in, const Attrs&) {
    const Tensor &q = in[0], &kc = in[1], &vc = in[2], &bt = in[3], &sl = in[4];
    check_dtype_in(q, "query", kFloatTypes);
    check_same_dtype(q, "query", kc, "key_cache");
    check_same_dtype(q, "query", vc, "value_cache");
    check_ndim(q, "query", 3);
    check_ndim(kc, "key_cache", 4);
    check_shape(vc, "value_cache", kc.shape());
    check_index(bt, "block_tables");
    check_index(sl, "seq_lens");
    check_ndim(bt, "block_tables", 2);
    check_shape(sl, "seq_lens", {q.size(0)});
    FS_CHECK(bt.size(0) == q.size(0), kInvalidArgument, "block_tables ", bt.describe(),
             " must have one row per sequence (", q.size(0), ")");
    FS_CHECK(kc.size(3) == q.size(2), kInvalidArgument, "key_cache head_dim ", kc.size(3),
             " differs from query head_dim ", q.size(2));
    FS_CHECK(kc.size(2) > 0 && q.size(1) % kc.size(2) == 0, kInvalidArgument, "query heads ",
             q.size(1), " are not a multiple of kv heads ", kc.size(2));
    return std::vector<OutputSpec>{{q.shape(), q.dtype()}};
  };
  p.reference = [](KernelArgs& args) {
    const Tensor &q = args.inputs[0], &kc = args.inputs[1];
    int64_t seqs = q.size(0), hq = q.size(1), d = q.size(2);
    int64_t blocks = kc.size(0), bs = kc.size(1), hk = kc.size(2);
    int64_t max_blocks = args.inputs[3].size(1);
    double scale = args.attrs.get_double("scale", 1.0 / std::sqrt(static_cast<double>(d)));
    auto qv = ref::load(q), kv = ref::load(kc), vv = ref::load(args.inputs[2]);
    auto table = ref::load_i64(args.inputs[3]);
    auto lens = ref::load_i64(args.inputs[4]);
    std::vector<double> out(qv.size());
    for (int64_t s = 0; s < seqs; ++s) {
      int64_t n = lens[s];
      FS_CHECK(n >= 0 && n <= max_blocks * bs, kInvalidArgument, "op 'paged_attention': seq_lens[",
               s, "]=", n, " exceeds the block table's ", max_blocks, " blocks of ", bs);
      for (int64_t j = 0; j < n; j += bs) {
        int64_t blk = table[s * max_blocks + j / bs];
        FS_CHECK(blk >= 0 && blk < blocks, kInvalidArgument, "op 'paged_attention': block_tables[",
                 s, ", ", j / bs, "]=", blk, " is outside the cache's ", blocks, " blocks");
      }
      for (int64_t h = 0; h < hq; ++h) {
        int64_t kh = h / (hq / hk);
        auto slot = [&](int64_t j) {
          return ((table[s * max_blocks + j / bs] * bs + j % bs) * hk + kh) * d;
        };
        attend_row(
            &qv[(s * hq + h) * d], d, d, n, scale, [&](int64_t j) { return &kv[slot(j)]; },
            [&](int64_t j) { return &vv[slot(j)]; }, [](int64_t) { return 0.0; },
            &out[(s * hq + h) * d]);
      }
    }
    ref::store(args.outputs[0], out);
  };
  registry.add_schema(std::move(p));
}

}  // namespace flagstone::ops
