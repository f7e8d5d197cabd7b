// Shape-changing data movement: pad, repeat, repeat_interleave, tile, flip, roll, tril, triu;
// schemas and references (each output element names its source coordinate).
#include "internal.h"
#include "reference/host.h"
#include "shape_rules.h"

namespace flagstone::ops {
namespace {

using ref::index_of;
using ref::map_copy;
using ref::row_major_strides;

OpSchema mv_schema(const char* name, const char* attrs, const char* doc) {
  OpSchema s;
  s.name = name;
  s.family = "movement";
  s.inputs = {"input"};
  s.outputs = {"out"};
  if (*attrs) s.attrs = {attrs};
  s.dtypes = all_plain_types();
  s.doc = doc;
  return s;
}

OutputSpec same(const Tensor& t, Shape shape) {
  return {std::move(shape), t.dtype()};
}

int64_t wrap_mod(int64_t a, int64_t n) {
  return ((a % n) + n) % n;
}

}  // namespace

void register_movement_ops_2(Registry& registry) {
  // pad: pads lists (before, after) pairs from the last dim backwards, as torch.nn.functional.pad.
  OpSchema pad = mv_schema("pad", "pads mode=constant|reflect|replicate|circular value=0",
                           "pad the trailing dims (negative pads crop in constant mode)");
  pad.infer = [](const std::vector<Tensor>& in, const Attrs& attrs) {
    auto pads = attrs.get_ints("pads", {});
    FS_CHECK(pads.size() % 2 == 0 && static_cast<int>(pads.size()) / 2 <= in[0].dim(),
             kInvalidArgument, "pads has ", pads.size(), " entries; expected pairs for at most ",
             in[0].dim(), " dims");
    std::string mode = attrs.get_string("mode", "constant");
    FS_CHECK(mode == "constant" || mode == "reflect" || mode == "replicate" || mode == "circular",
             kInvalidArgument, "pad mode '", mode,
             "' (expected constant, reflect, replicate or circular)");
    Shape shape = in[0].shape();
    for (size_t p = 0; p < pads.size() / 2; ++p) {
      int d = in[0].dim() - 1 - static_cast<int>(p);
      int64_t size = shape[d];
      if (mode == "reflect")
        FS_CHECK(pads[2 * p] < size && pads[2 * p + 1] < size, kInvalidArgument, "reflect padding ",
                 pads[2 * p], ",", pads[2 * p + 1], " must be smaller than dim ", d, " of size ",
                 size);
      if (mode != "constant")
        FS_CHECK(pads[2 * p] >= 0 && pads[2 * p + 1] >= 0 && size > 0, kInvalidArgument, mode,
                 " padding needs non-negative pads and a non-empty dim ", d);
      if (mode == "circular")
        FS_CHECK(pads[2 * p] <= size && pads[2 * p + 1] <= size, kInvalidArgument,
                 "circular padding cannot exceed the size ", size, " of dim ", d);
      shape[d] += pads[2 * p] + pads[2 * p + 1];
      FS_CHECK(shape[d] >= 0, kInvalidArgument, "pads make dim ", d, " negative");
    }
    return std::vector<OutputSpec>{same(in[0], shape)};
  };
  pad.reference = [](KernelArgs& args) {
    const Tensor& x = args.inputs[0];
    auto pads = args.attrs.get_ints("pads", {});
    std::string mode = args.attrs.get_string("mode", "constant");
    Shape xs = row_major_strides(x.shape());
    map_copy(
        x, args.outputs[0],
        [&](Shape c) -> int64_t {
          for (size_t p = 0; p < pads.size() / 2; ++p) {
            int d = x.dim() - 1 - static_cast<int>(p);
            int64_t i = c[d] - pads[2 * p], n = x.size(d);
            if (i < 0 || i >= n) {
              if (mode == "constant") return -1;
              if (mode == "replicate")
                i = i < 0 ? 0 : n - 1;
              else if (mode == "circular")
                i = wrap_mod(i, n);
              else
                i = i < 0 ? -i : 2 * (n - 1) - i;  // reflect, edge not repeated
            }
            c[d] = i;
          }
          return index_of(c, xs);
        },
        args.attrs.get_double("value", 0));
  };
  registry.add_schema(std::move(pad));

  for (const char* name : {"repeat", "tile"}) {
    bool tile = std::string_view(name) == "tile";
    OpSchema s = mv_schema(name, tile ? "reps" : "repeats",
                           tile ? "torch.tile: repeat with reps left-padded by ones"
                                : "torch.repeat: tile the tensor repeats[i] times along dim i");
    const char* key = tile ? "reps" : "repeats";
    s.infer = [tile, key](const std::vector<Tensor>& in, const Attrs& attrs) {
      auto reps = attrs.get_ints(key, {});
      if (tile)
        while (static_cast<int>(reps.size()) < in[0].dim()) reps.insert(reps.begin(), 1);
      FS_CHECK(static_cast<int>(reps.size()) >= in[0].dim(), kInvalidArgument, key, " has ",
               reps.size(), " entries, fewer than the ", in[0].dim(), " dims of ",
               in[0].describe());
      Shape shape(reps.size());
      size_t lead = reps.size() - in[0].dim();
      for (size_t i = 0; i < reps.size(); ++i) {
        FS_CHECK(reps[i] >= 0, kInvalidArgument, key, " must be non-negative");
        shape[i] = reps[i] * (i < lead ? 1 : in[0].size(static_cast<int>(i - lead)));
      }
      return std::vector<OutputSpec>{same(in[0], shape)};
    };
    s.reference = [](KernelArgs& args) {
      const Tensor& x = args.inputs[0];
      Shape xs = row_major_strides(x.shape());
      size_t lead = args.outputs[0].dim() - x.dim();
      map_copy(x, args.outputs[0], [&](const Shape& c) {
        Shape src(c.begin() + static_cast<int64_t>(lead), c.end());
        for (int d = 0; d < x.dim(); ++d) src[d] %= x.size(d);
        return index_of(src, xs);
      });
    };
    registry.add_schema(std::move(s));
  }

  OpSchema ri = mv_schema("repeat_interleave", "repeats dim?",
                          "repeat each element repeats times along dim (flattened without dim)");
  ri.infer = [](const std::vector<Tensor>& in, const Attrs& attrs) {
    int64_t r = attrs.int_at("repeats");
    FS_CHECK(r >= 0, kInvalidArgument, "repeats=", r, " must be non-negative");
    if (!attrs.has("dim")) return std::vector<OutputSpec>{same(in[0], {in[0].numel() * r})};
    int d = normalize_dim(attrs.get_int("dim", 0), in[0].dim());
    Shape shape = in[0].shape();
    if (!shape.empty()) shape[d] *= r;
    return std::vector<OutputSpec>{same(in[0], shape)};
  };
  ri.reference = [](KernelArgs& args) {
    Tensor x = args.attrs.has("dim") ? args.inputs[0] : args.inputs[0].reshape({-1});
    int d = args.attrs.has("dim") ? normalize_dim(args.attrs.get_int("dim", 0), x.dim()) : 0;
    int64_t r = args.attrs.int_at("repeats");
    Shape xs = row_major_strides(x.shape());
    Tensor out = args.outputs[0];
    map_copy(x, out, [&](Shape c) {
      if (!c.empty()) c[d] /= r;
      return index_of(c, xs);
    });
  };
  registry.add_schema(std::move(ri));

  OpSchema flip = mv_schema("flip", "dims", "reverse the order along dims");
  flip.infer = [](const std::vector<Tensor>& in, const Attrs& attrs) {
    normalize_dims(attrs.get_ints("dims", {}), in[0].dim());
    return std::vector<OutputSpec>{same(in[0], in[0].shape())};
  };
  flip.reference = [](KernelArgs& args) {
    const Tensor& x = args.inputs[0];
    auto raw_dims = args.attrs.get_ints("dims", {});
    auto dims = raw_dims.empty() ? std::vector<int>{} : normalize_dims(raw_dims, x.dim());
    Shape xs = row_major_strides(x.shape());
    map_copy(x, args.outputs[0], [&](Shape c) {
      for (int d : dims) c[d] = x.size(d) - 1 - c[d];
      return index_of(c, xs);
    });
  };
  registry.add_schema(std::move(flip));

  OpSchema roll = mv_schema("roll", "shifts dims?",
                            "rotate along dims by shifts (the flattened tensor without dims)");
  roll.infer = [](const std::vector<Tensor>& in, const Attrs& attrs) {
    auto shifts = attrs.get_ints("shifts", {});
    auto dims = attrs.get_ints("dims", {});
    FS_CHECK(!shifts.empty(), kInvalidArgument, "roll needs shifts");
    FS_CHECK(dims.empty() ? shifts.size() == 1 : shifts.size() == dims.size(), kInvalidArgument,
             "roll got ", shifts.size(), " shifts for ", dims.size(), " dims");
    for (int64_t d : dims) normalize_dim(d, in[0].dim());
    return std::vector<OutputSpec>{same(in[0], in[0].shape())};
  };
  roll.reference = [](KernelArgs& args) {
    auto shifts = args.attrs.get_ints("shifts", {});
    auto dims = args.attrs.get_ints("dims", {});
    bool flat = dims.empty();
    Tensor x = flat ? args.inputs[0].reshape({-1}) : args.inputs[0];
    Tensor out = flat ? Tensor::empty({x.numel()}, x.dtype(), args.device) : args.outputs[0];
    if (flat) dims = {0};
    Shape xs = row_major_strides(x.shape());
    map_copy(x, out, [&](Shape c) {
      for (size_t k = 0; k < dims.size(); ++k) {
        int d = normalize_dim(dims[k], x.dim());
        if (x.size(d) > 0) c[d] = wrap_mod(c[d] - shifts[k], x.size(d));
      }
      return index_of(c, xs);
    });
    if (flat) args.outputs[0].copy_(out.view(args.outputs[0].shape()));
  };
  registry.add_schema(std::move(roll));

  for (const char* name : {"tril", "triu"}) {
    bool lower = std::string_view(name) == "tril";
    OpSchema s = mv_schema(name, "diagonal=0",
                           lower ? "zero above the diagonal of the last two dims"
                                 : "zero below the diagonal of the last two dims");
    s.infer = [](const std::vector<Tensor>& in, const Attrs&) {
      FS_CHECK(in[0].dim() >= 2, kInvalidArgument, "tensor 'input' is ", in[0].describe(),
               "; expected at least 2 dims");
      return std::vector<OutputSpec>{same(in[0], in[0].shape())};
    };
    s.reference = [lower](KernelArgs& args) {
      const Tensor& x = args.inputs[0];
      int64_t k = args.attrs.get_int("diagonal", 0);
      Shape xs = row_major_strides(x.shape());
      map_copy(x, args.outputs[0], [&](const Shape& c) {
        int64_t i = c[c.size() - 2], j = c.back();
        bool keep = lower ? j - i <= k : j - i >= k;
        return keep ? index_of(c, xs) : int64_t{-1};
      });
    };
    registry.add_schema(std::move(s));
  }
}

}  // namespace flagstone::ops
