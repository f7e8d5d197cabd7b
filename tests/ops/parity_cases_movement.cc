// Parity cases for the data-movement ops and factories served outside the cpu reference (pad in
// every mode, repeat, tile, repeat_interleave, flip, roll, tril, triu, index_select, gather,
// scatter, scatter_add, index_put, masked_fill, stack; full, zeros, ones, eye, arange, linspace,
// randint): odd shapes, strided inputs, negative pads and indices, the edges of each rule.
#include "ops/parity_cases.h"

namespace flagstone::ops::testing {
namespace {

using Cases = std::vector<ParityCase>;
using Ints = std::vector<int64_t>;

Tensor rnd(Rng& rng, const Shape& s, DType d, const Device& dev, bool strided = false) {
  double lo = d == DType::kU8 ? 0 : -50, hi = d == DType::kU8 ? 100 : 50;
  if (is_floating(d)) lo = -3, hi = 3;
  return random_tensor(rng, s, d, dev, lo, hi, strided);
}

Tensor indices(Rng& rng, const Shape& s, int64_t size, const Device& dev, DType d, bool negative) {
  std::vector<double> v(static_cast<size_t>(shape_numel(s)));
  for (auto& e : v) e = static_cast<double>(rng.integer(negative ? -size : 0, size - 1));
  return make_tensor(v, s, d, dev);
}

// Each column of a [rows, cols] index holds distinct rows of [0, size): plain scatters with
// repeated targets have no defined winner.
Tensor distinct_rows(Rng& rng, int64_t rows, int64_t cols, int64_t size, const Device& dev) {
  std::vector<double> v(static_cast<size_t>(rows * cols));
  for (int64_t j = 0; j < cols; ++j) {
    std::vector<int64_t> perm(static_cast<size_t>(size));
    for (int64_t i = 0; i < size; ++i) perm[static_cast<size_t>(i)] = i;
    for (int64_t i = size - 1; i > 0; --i)
      std::swap(perm[static_cast<size_t>(i)], perm[static_cast<size_t>(rng.integer(0, i))]);
    for (int64_t i = 0; i < rows; ++i)
      v[static_cast<size_t>(i * cols + j)] = static_cast<double>(perm[static_cast<size_t>(i)]);
  }
  return make_tensor(v, {rows, cols}, DType::kI64, dev);
}

}  // namespace

void add_movement_parity_cases(std::map<std::string, CaseGenerator>& g) {
  g["pad"] = [](Rng& rng, DType d, const Device& dev) {
    Cases c{{{rnd(rng, {3, 5, 7}, d, dev)},
             {{"pads", Ints{2, 1, 0, 3}}, {"value", 2.0}},
             1,
             "constant last two dims"},
            {{rnd(rng, {4, 9}, d, dev, true)},
             {{"pads", Ints{-2, 3}}},
             1,
             "constant crop + pad, strided"}};
    for (const char* mode : {"reflect", "replicate", "circular"})
      c.push_back(
          {{rnd(rng, {2, 5, 6}, d, dev)}, {{"pads", Ints{3, 2, 1, 4}}, {"mode", mode}}, 1, mode});
    return c;
  };
  g["repeat"] = [](Rng& rng, DType d, const Device& dev) {
    return Cases{{{rnd(rng, {3, 5}, d, dev)}, {{"repeats", Ints{2, 1, 3}}}, 1, "new leading dim"},
                 {{rnd(rng, {4, 3}, d, dev, true)}, {{"repeats", Ints{3, 2}}}, 1, "strided"}};
  };
  g["tile"] = [](Rng& rng, DType d, const Device& dev) {
    return Cases{{{rnd(rng, {2, 3, 5}, d, dev)}, {{"reps", Ints{2, 3}}}, 1, "short reps"},
                 {{rnd(rng, {7}, d, dev)}, {{"reps", Ints{3, 2}}}, 1, "1-d to 2-d"}};
  };
  g["repeat_interleave"] = [](Rng& rng, DType d, const Device& dev) {
    return Cases{{{rnd(rng, {3, 5}, d, dev)}, {{"repeats", 3}, {"dim", 1}}, 1, "dim 1"},
                 {{rnd(rng, {4, 3}, d, dev, true)}, {{"repeats", 2}}, 1, "flattened, strided"}};
  };
  g["flip"] = [](Rng& rng, DType d, const Device& dev) {
    return Cases{{{rnd(rng, {3, 5, 7}, d, dev)}, {{"dims", Ints{0, 2}}}, 1, "dims 0, 2"},
                 {{rnd(rng, {6, 5}, d, dev, true)}, {{"dims", Ints{-1}}}, 1, "strided last"}};
  };
  g["roll"] = [](Rng& rng, DType d, const Device& dev) {
    return Cases{
        {{rnd(rng, {4, 7}, d, dev)}, {{"shifts", Ints{2, -9}}, {"dims", Ints{0, 1}}}, 1, "2 dims"},
        {{rnd(rng, {3, 5}, d, dev, true)}, {{"shifts", Ints{4}}}, 1, "flattened, strided"}};
  };
  for (const char* op : {"tril", "triu"}) {
    g[op] = [](Rng& rng, DType d, const Device& dev) {
      return Cases{{{rnd(rng, {2, 5, 7}, d, dev)}, {{"diagonal", 1}}, 1, "batched, diagonal 1"},
                   {{rnd(rng, {6, 4}, d, dev, true)}, {{"diagonal", -2}}, 1, "strided, -2"}};
    };
  }
  g["index_select"] = [](Rng& rng, DType d, const Device& dev) {
    return Cases{
        {{rnd(rng, {5, 7}, d, dev), indices(rng, {9}, 7, dev, DType::kI64, true)},
         {{"dim", 1}},
         1,
         "dim 1, negative indices"},
        {{rnd(rng, {6, 3, 2}, d, dev, true), indices(rng, {4}, 6, dev, DType::kI32, false)},
         {{"dim", 0}},
         1,
         "dim 0, i32 index, strided"}};
  };
  g["gather"] = [](Rng& rng, DType d, const Device& dev) {
    return Cases{
        {{rnd(rng, {5, 7}, d, dev), indices(rng, {5, 4}, 7, dev, DType::kI64, false)},
         {{"dim", 1}},
         1,
         "dim 1"},
        {{rnd(rng, {6, 3, 4}, d, dev, true), indices(rng, {2, 3, 3}, 6, dev, DType::kI64, true)},
         {{"dim", 0}},
         1,
         "dim 0, negative, strided"}};
  };

  g["scatter"] = [](Rng& rng, DType d, const Device& dev) {
    return Cases{
        {{rnd(rng, {6, 5}, d, dev), distinct_rows(rng, 4, 5, 6, dev), rnd(rng, {4, 7}, d, dev)},
         {{"dim", 0}},
         1,
         "dim 0, src wider"},
        {{rnd(rng, {6, 5}, d, dev, true), distinct_rows(rng, 3, 5, 6, dev),
          rnd(rng, {3, 5}, d, dev)},
         {{"dim", 0}, {"reduce", "add"}},
         3,
         "reduce add, strided"}};
  };
  g["scatter_add"] = [](Rng& rng, DType d, const Device& dev) {
    return Cases{{{rnd(rng, {5, 7}, d, dev), indices(rng, {5, 9}, 7, dev, DType::kI64, true),
                   rnd(rng, {5, 9}, d, dev)},
                  {{"dim", 1}},
                  9,
                  "dim 1, repeated targets"}};
  };
  g["index_put"] = [](Rng& rng, DType d, const Device& dev) {
    Tensor rows = distinct_rows(rng, 4, 1, 7, dev).reshape({4});
    return Cases{{{rnd(rng, {7, 3}, d, dev), rows, rnd(rng, {4, 3}, d, dev)}, {}, 1, "rows"},
                 {{rnd(rng, {7, 3}, d, dev), indices(rng, {9}, 7, dev, DType::kI64, true),
                   rnd(rng, {3}, d, dev)},
                  {{"accumulate", true}},
                  9,
                  "accumulate, broadcast values"}};
  };
  g["masked_fill"] = [](Rng& rng, DType d, const Device& dev) {
    return Cases{
        {{rnd(rng, {4, 7}, d, dev), random_tensor(rng, {4, 7}, DType::kBool, dev)},
         {{"value", -2.0}},
         1,
         "same shape"},
        {{rnd(rng, {3, 5, 6}, d, dev, true), random_tensor(rng, {5, 1}, DType::kBool, dev)},
         {{"value", 1.0}},
         1,
         "broadcast mask, strided"}};
  };
  g["stack"] = [](Rng& rng, DType d, const Device& dev) {
    return Cases{
        {{rnd(rng, {3, 5}, d, dev), rnd(rng, {3, 5}, d, dev, true), rnd(rng, {3, 5}, d, dev)},
         {{"dim", 1}},
         1,
         "dim 1, one strided"},
        {{rnd(rng, {4}, d, dev), rnd(rng, {4}, d, dev)}, {{"dim", -1}}, 1, "last dim"}};
  };
  // Factories: no inputs; the dtype and device come from attributes.
  auto factory = [](Attrs attrs, DType d, const Device& dev) {
    attrs.set("dtype", std::string(dtype_name(d)));
    attrs.set("device", dev.spec());
    return attrs;
  };
  g["full"] = [factory](Rng& rng, DType d, const Device& dev) {
    double v = is_floating(d) ? rng.uniform(-5, 5) : static_cast<double>(rng.integer(0, 9));
    return Cases{{{}, factory({{"shape", Ints{3, 77}}, {"value", v}}, d, dev), 1, "3x77"}};
  };
  for (const char* op : {"zeros", "ones"})
    g[op] = [factory](Rng&, DType d, const Device& dev) {
      return Cases{{{}, factory({{"shape", Ints{5, 3, 9}}}, d, dev), 1, "5x3x9"}};
    };
  g["eye"] = [factory](Rng&, DType d, const Device& dev) {
    return Cases{{{}, factory({{"n", 7}, {"m", 5}}, d, dev), 1, "7x5"},
                 {{}, factory({{"n", 4}}, d, dev), 1, "square"}};
  };
  g["arange"] = [factory](Rng& rng, DType d, const Device& dev) {
    int64_t start = rng.integer(-20, 20);
    Cases c{{{},
             factory({{"start", start}, {"end", start + 301}, {"step", 3}}, d, dev),
             1,
             "integer step"}};
    if (is_floating(d))
      c.push_back(
          {{}, factory({{"start", -1.5}, {"end", 4.0}, {"step", 0.25}}, d, dev), 1, "float step"});
    return c;
  };
  g["linspace"] = [factory](Rng& rng, DType d, const Device& dev) {
    double start = rng.uniform(-3, 0), end = rng.uniform(1, 4);
    return Cases{{{}, factory({{"start", start}, {"end", end}, {"steps", 101}}, d, dev), 1, "101"}};
  };
  g["randint"] = [factory](Rng& rng, DType d, const Device& dev) {
    int64_t low = d == DType::kU8 ? 0 : -7;
    return Cases{{{},
                  factory({{"low", low},
                           {"high", low + 100},
                           {"shape", Ints{3, 77}},
                           {"seed", rng.integer(0, 1 << 30)},
                           {"offset", 9}},
                          d, dev),
                  1,
                  "3x77"}};
  };
}

}  // namespace flagstone::ops::testing
