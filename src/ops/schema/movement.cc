// Data movement: contiguous, cat, stack, index_select, gather, scatter(_add), index_put,
// masked_fill, masked_select, nonzero, pad, repeat, repeat_interleave, tile, flip, roll, tril,
// triu; schemas and references that copy element bytes exactly.
#include <numeric>

#include "internal.h"
#include "reference/host.h"
#include "shape_rules.h"

namespace flagstone::ops {
namespace {

using ref::coords_of;
using ref::index_of;
using ref::map_copy;
using ref::row_major_strides;

OpSchema mv_schema(const char* name, std::vector<std::string> inputs, const char* attrs,
                   const char* doc) {
  OpSchema s;
  s.name = name;
  s.family = "movement";
  s.inputs = std::move(inputs);
  s.outputs = {"out"};
  if (*attrs) s.attrs = {attrs};
  s.dtypes = all_plain_types();
  s.doc = doc;
  return s;
}

int64_t checked_index(int64_t i, int64_t size, const char* op, const char* what) {
  if (i < 0) i += size;
  FS_CHECK(i >= 0 && i < size, kInvalidArgument, "op '", op, "': ", what, " ", i < 0 ? i - size : i,
           " is out of range for size ", size);
  return i;
}

// Values of several tensors converted to `dtype` exactly: ints through int64, floats through
// double.
struct Values {
  std::vector<double> f;
  std::vector<int64_t> i;
};
Values load_values(const Tensor& t, DType dtype) {
  Values v;
  if (is_floating(dtype))
    v.f = ref::load(t);
  else
    v.i = ref::load_i64(t);
  return v;
}

void scatter_reference(KernelArgs& args, bool add) {
  const Tensor &x = args.inputs[0], &index = args.inputs[1], &src = args.inputs[2];
  int dim = normalize_dim(args.attrs.int_at("dim"), x.dim());
  bool accumulate = add || args.attrs.get_string("reduce", "none") == "add";
  auto xv = load_values(x, x.dtype()), sv = load_values(src, x.dtype());
  auto idx = ref::load_i64(index);
  Shape xs = row_major_strides(x.shape()), ss = row_major_strides(src.shape());
  for (int64_t k = 0; k < index.numel(); ++k) {
    Shape c = coords_of(k, index.shape());
    int64_t from = index_of(c, ss);
    c[dim] = checked_index(idx[k], x.size(dim), add ? "scatter_add" : "scatter", "index");
    int64_t to = index_of(c, xs);
    if (is_floating(x.dtype()))
      xv.f[to] = accumulate ? xv.f[to] + sv.f[from] : sv.f[from];
    else
      xv.i[to] = accumulate ? xv.i[to] + sv.i[from] : sv.i[from];
  }
  if (is_floating(x.dtype()))
    ref::store(args.outputs[0], xv.f);
  else
    ref::store_i64(args.outputs[0], xv.i);
}

void register_index_ops(Registry& registry) {
  OpSchema is = mv_schema("index_select", {"input", "index"}, "dim",
                          "entries of input along dim at index (1-d)");
  is.infer = [](const std::vector<Tensor>& in, const Attrs& attrs) {
    check_index(in[1], "index");
    FS_CHECK(in[1].dim() <= 1, kInvalidArgument, "index ", in[1].describe(), " must be 0-d or 1-d");
    int d = normalize_dim(attrs.int_at("dim"), in[0].dim());
    Shape shape = in[0].shape();
    if (!shape.empty()) shape[d] = in[1].numel();
    return std::vector<OutputSpec>{{shape, in[0].dtype()}};
  };
  is.reference = [](KernelArgs& args) {
    const Tensor& x = args.inputs[0];
    int d = normalize_dim(args.attrs.int_at("dim"), x.dim());
    auto idx = ref::load_i64(args.inputs[1]);
    Shape xs = row_major_strides(x.shape());
    map_copy(x, args.outputs[0], [&](Shape c) {
      if (!c.empty()) c[d] = checked_index(idx[c[d]], x.size(d), "index_select", "index");
      return index_of(c, xs);
    });
  };
  registry.add_schema(std::move(is));

  OpSchema g = mv_schema("gather", {"input", "index"}, "dim",
                         "out[i][j] = input[index[i][j]][j] (for dim 0)");
  g.infer = [](const std::vector<Tensor>& in, const Attrs& attrs) {
    check_index(in[1], "index");
    int d = normalize_dim(attrs.int_at("dim"), in[0].dim());
    FS_CHECK(in[1].dim() == in[0].dim(), kInvalidArgument, "index ", in[1].describe(),
             " must have as many dims as input ", in[0].describe());
    for (int i = 0; i < in[0].dim(); ++i)
      FS_CHECK(i == d || in[1].size(i) <= in[0].size(i), kInvalidArgument, "index ",
               in[1].describe(), " is larger than input ", in[0].describe(), " in dim ", i);
    return std::vector<OutputSpec>{{in[1].shape(), in[0].dtype()}};
  };
  g.reference = [](KernelArgs& args) {
    const Tensor& x = args.inputs[0];
    int d = normalize_dim(args.attrs.int_at("dim"), x.dim());
    auto idx = ref::load_i64(args.inputs[1]);
    Shape xs = row_major_strides(x.shape());
    int64_t k = 0;
    map_copy(x, args.outputs[0], [&](Shape c) {
      if (!c.empty()) c[d] = checked_index(idx[k], x.size(d), "gather", "index");
      ++k;
      return index_of(c, xs);
    });
  };
  registry.add_schema(std::move(g));

  for (const char* name : {"scatter", "scatter_add"}) {
    bool add = std::string_view(name) == "scatter_add";
    OpSchema s = mv_schema(name, {"input", "index", "src"}, add ? "dim" : "dim reduce=none|add",
                           add ? "copy of input with src added at index along dim"
                               : "copy of input with src written at index along dim");
    s.dtypes = numeric_types();
    s.infer = [](const std::vector<Tensor>& in, const Attrs& attrs) {
      check_index(in[1], "index");
      check_same_dtype(in[0], "input", in[2], "src");
      int d = normalize_dim(attrs.int_at("dim"), in[0].dim());
      FS_CHECK(in[1].dim() == in[0].dim() && in[2].dim() == in[0].dim(), kInvalidArgument,
               "input, index and src need the same number of dims: ", in[0].describe(), ", ",
               in[1].describe(), ", ", in[2].describe());
      for (int i = 0; i < in[0].dim(); ++i) {
        FS_CHECK(in[1].size(i) <= in[2].size(i), kInvalidArgument, "index ", in[1].describe(),
                 " is larger than src ", in[2].describe(), " in dim ", i);
        FS_CHECK(i == d || in[1].size(i) <= in[0].size(i), kInvalidArgument, "index ",
                 in[1].describe(), " is larger than input ", in[0].describe(), " in dim ", i);
      }
      return std::vector<OutputSpec>{{in[0].shape(), in[0].dtype()}};
    };
    s.reference = [add](KernelArgs& args) { scatter_reference(args, add); };
    registry.add_schema(std::move(s));
  }

  OpSchema ip =
      mv_schema("index_put", {"input", "index", "values"}, "accumulate=false",
                "copy of input with rows index (1-d, dim 0) set to (or increased by) values");
  ip.dtypes = numeric_types();
  ip.infer = [](const std::vector<Tensor>& in, const Attrs&) {
    check_index(in[1], "index");
    check_ndim(in[1], "index", 1);
    check_same_dtype(in[0], "input", in[2], "values");
    FS_CHECK(in[0].dim() >= 1, kInvalidArgument, "index_put needs an input of at least 1 dim");
    Shape target = in[0].shape();
    target[0] = in[1].size(0);
    FS_CHECK(broadcast_shapes(in[2].shape(), target) == target, kInvalidArgument, "values ",
             in[2].describe(), " do not broadcast to ", shape_to_string(target));
    return std::vector<OutputSpec>{{in[0].shape(), in[0].dtype()}};
  };
  ip.reference = [](KernelArgs& args) {
    const Tensor &x = args.inputs[0], &vals = args.inputs[2];
    bool acc = args.attrs.get_bool("accumulate", false);
    auto xv = load_values(x, x.dtype()), vv = load_values(vals, x.dtype());
    auto idx = ref::load_i64(args.inputs[1]);
    int64_t row = x.size(0) == 0 ? 0 : x.numel() / x.size(0);
    Shape target = x.shape();
    target[0] = static_cast<int64_t>(idx.size());
    ref::BroadcastIndex bi(vals.shape(), target);
    for (size_t r = 0; r < idx.size(); ++r) {
      int64_t to_row = checked_index(idx[r], x.size(0), "index_put", "index");
      for (int64_t j = 0; j < row; ++j) {
        int64_t from = bi(static_cast<int64_t>(r) * row + j), to = to_row * row + j;
        if (is_floating(x.dtype()))
          xv.f[to] = acc ? xv.f[to] + vv.f[from] : vv.f[from];
        else
          xv.i[to] = acc ? xv.i[to] + vv.i[from] : vv.i[from];
      }
    }
    if (is_floating(x.dtype()))
      ref::store(args.outputs[0], xv.f);
    else
      ref::store_i64(args.outputs[0], xv.i);
  };
  registry.add_schema(std::move(ip));

  OpSchema mf = mv_schema("masked_fill", {"input", "mask"}, "value",
                          "input with value where mask (broadcast) is true");
  mf.infer = [](const std::vector<Tensor>& in, const Attrs& attrs) {
    FS_CHECK(in[1].dtype() == DType::kBool, kInvalidArgument, "tensor 'mask' is ", in[1].describe(),
             "; expected bool");
    FS_CHECK(broadcast_shapes(in[1].shape(), in[0].shape()) == in[0].shape(), kInvalidArgument,
             "mask ", in[1].describe(), " does not broadcast to input ", in[0].describe());
    attrs.double_at("value");
    return std::vector<OutputSpec>{{in[0].shape(), in[0].dtype()}};
  };
  mf.reference = [](KernelArgs& args) {
    const Tensor& x = args.inputs[0];
    auto mask = ref::load_i64(args.inputs[1]);
    ref::BroadcastIndex bm(args.inputs[1].shape(), x.shape());
    Shape xs = row_major_strides(x.shape());
    map_copy(
        x, args.outputs[0],
        [&](const Shape& c) {
          int64_t i = index_of(c, xs);
          return mask[bm(i)] ? int64_t{-1} : i;
        },
        args.attrs.double_at("value"));
  };
  registry.add_schema(std::move(mf));

  OpSchema ms = mv_schema("masked_select", {"input", "mask"}, "",
                          "1-d tensor of the elements where mask (broadcast) is true");
  ms.dynamic_outputs = true;
  ms.infer = [](const std::vector<Tensor>& in, const Attrs&) {
    FS_CHECK(in[1].dtype() == DType::kBool, kInvalidArgument, "tensor 'mask' is ", in[1].describe(),
             "; expected bool");
    broadcast_shapes(in[0].shape(), in[1].shape());
    return std::vector<OutputSpec>{};
  };
  ms.reference = [](KernelArgs& args) {
    Shape full = broadcast_shapes(args.inputs[0].shape(), args.inputs[1].shape());
    Tensor x = args.inputs[0].expand(full);
    auto mask = ref::load_i64(args.inputs[1]);
    ref::BroadcastIndex bm(args.inputs[1].shape(), full);
    std::vector<int64_t> map;
    for (int64_t i = 0; i < shape_numel(full); ++i)
      if (mask[bm(i)]) map.push_back(i);
    Tensor out = Tensor::empty({static_cast<int64_t>(map.size())}, x.dtype(), args.device);
    ref::store_raw(out, ref::gather_elements(ref::load_raw(x), dtype_size(x.dtype()), map));
    args.outputs = {out};
  };
  registry.add_schema(std::move(ms));

  OpSchema nz = mv_schema("nonzero", {"input"}, "",
                          "[count, ndim] i64 coordinates of nonzero elements, row-major order");
  nz.dynamic_outputs = true;
  nz.infer = [](const std::vector<Tensor>&, const Attrs&) { return std::vector<OutputSpec>{}; };
  nz.reference = [](KernelArgs& args) {
    const Tensor& x = args.inputs[0];
    auto v = ref::load(x);
    std::vector<int64_t> coords;
    int64_t count = 0;
    for (int64_t i = 0; i < x.numel(); ++i) {
      if (v[i] == 0) continue;
      ++count;
      for (int64_t c : coords_of(i, x.shape())) coords.push_back(c);
    }
    Tensor out = Tensor::empty({count, x.dim()}, DType::kI64, args.device);
    ref::store_i64(out, coords);
    args.outputs = {out};
  };
  registry.add_schema(std::move(nz));
}

}  // namespace

void register_movement_ops(Registry& registry) {
  OpSchema c = mv_schema("contiguous", {"input"}, "", "a row-major copy");
  c.infer = [](const std::vector<Tensor>& in, const Attrs&) {
    return std::vector<OutputSpec>{{in[0].shape(), in[0].dtype()}};
  };
  c.reference = [](KernelArgs& args) {
    ref::store_raw(args.outputs[0], ref::load_raw(args.inputs[0]));
  };
  registry.add_schema(std::move(c));

  for (const char* name : {"cat", "stack"}) {
    bool stack = std::string_view(name) == "stack";
    OpSchema s = mv_schema(name, {"tensors..."}, "dim=0",
                           stack ? "join equal-shaped tensors along a new dim"
                                 : "join tensors along an existing dim (dtypes promote)");
    s.infer = [stack](const std::vector<Tensor>& in, const Attrs& attrs) {
      const Tensor& first = in[0];
      int nd = first.dim() + (stack ? 1 : 0);
      FS_CHECK(nd > 0, kInvalidArgument, "cat needs tensors of at least 1 dim");
      int d = normalize_dim(attrs.get_int("dim", 0), nd);
      Shape shape = first.shape();
      if (stack)
        shape.insert(shape.begin() + d, static_cast<int64_t>(in.size()));
      else
        shape[d] = 0;
      for (size_t i = 0; i < in.size(); ++i) {
        FS_CHECK(in[i].dim() == first.dim(), kInvalidArgument, "tensors[", i, "] is ",
                 in[i].describe(), " but tensors[0] is ", first.describe(),
                 "; they need the same number of dims");
        for (int k = 0; k < first.dim(); ++k)
          FS_CHECK(in[i].size(k) == first.size(k) || (!stack && k == d), kInvalidArgument,
                   "tensors[", i, "] is ", in[i].describe(), " but tensors[0] is ",
                   first.describe(), "; sizes must match except in dim ", d);
        if (!stack) shape[d] += in[i].size(d);
      }
      return std::vector<OutputSpec>{{shape, result_type(in)}};
    };
    s.reference = [stack](KernelArgs& args) {
      const Tensor& out = args.outputs[0];
      int d = normalize_dim(args.attrs.get_int("dim", 0), out.dim());
      bool fl = is_floating(out.dtype());
      std::vector<double> f(static_cast<size_t>(out.numel()));
      std::vector<int64_t> iv(f.size());
      int64_t start = 0;
      Shape os = row_major_strides(out.shape());
      for (const Tensor& t : args.inputs) {
        Tensor part = stack ? t.unsqueeze(d) : t;
        auto vf = fl ? ref::load(part) : std::vector<double>();
        auto vi = fl ? std::vector<int64_t>() : ref::load_i64(part);
        for (int64_t k = 0; k < part.numel(); ++k) {
          Shape c = coords_of(k, part.shape());
          c[d] += start;
          int64_t o = index_of(c, os);
          if (fl)
            f[o] = vf[k];
          else
            iv[o] = vi[k];
        }
        start += part.size(d);
      }
      if (fl)
        ref::store(out, f);
      else
        ref::store_i64(out, iv);
    };
    registry.add_schema(std::move(s));
  }

  register_index_ops(registry);
  register_movement_ops_2(registry);
}

}  // namespace flagstone::ops
