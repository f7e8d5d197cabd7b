// Parity cases per op (see parity_cases.h). Shapes are small and odd so the whole suite stays
// fast on a 2-core CI machine while still crossing vector-width and thread-chunk boundaries.
#include "ops/parity_cases.h"

#include <cmath>
#include <cstring>

namespace flagstone::ops::testing {
namespace {

using Cases = std::vector<ParityCase>;

bool is_int(DType d) {
  return !is_floating(d) && d != DType::kBool;
}

// Value range for a dtype: floats in [lo, hi); integers in a range that keeps u8 non-negative.
std::pair<double, double> range_for(DType d, double lo, double hi) {
  if (d == DType::kU8) return {0, 120};
  if (is_int(d)) return {-60, 60};
  return {lo, hi};
}

Tensor rt(Rng& rng, const Shape& s, DType d, const Device& dev, double lo = -3, double hi = 3,
          bool strided = false) {
  auto [a, b] = range_for(d, lo, hi);
  return random_tensor(rng, s, d, dev, a, b, strided);
}

CaseGenerator unary(double lo = -3, double hi = 3, Attrs attrs = {}) {
  return [=](Rng& rng, DType d, const Device& dev) {
    return Cases{{{rt(rng, {37}, d, dev, lo, hi)}, attrs, 1, "1-d odd"},
                 {{rt(rng, {5, 13}, d, dev, lo, hi)}, attrs, 1, "2-d"},
                 {{rt(rng, {3, 4, 7}, d, dev, lo, hi, true)}, attrs, 1, "strided"},
                 {{rt(rng, {}, d, dev, lo, hi)}, attrs, 1, "0-d"}};
  };
}

CaseGenerator binary(double lo = -3, double hi = 3, double blo = -3, double bhi = 3,
                     Attrs attrs = {}) {
  return [=](Rng& rng, DType d, const Device& dev) {
    Cases c{
        {{rt(rng, {6, 11}, d, dev, lo, hi), rt(rng, {6, 11}, d, dev, blo, bhi)},
         attrs,
         1,
         "same shape"},
        {{rt(rng, {4, 1, 7}, d, dev, lo, hi), rt(rng, {3, 1}, d, dev, blo, bhi)},
         attrs,
         1,
         "broadcast"},
        {{rt(rng, {5, 9}, d, dev, lo, hi, true), rt(rng, {5, 9}, d, dev, blo, bhi, true)},
         attrs,
         1,
         "strided"},
        {{rt(rng, {33}, d, dev, lo, hi), rt(rng, {}, d, dev, blo, bhi)}, attrs, 1, "0-d other"}};
    if (d != DType::kF32 && is_floating(d))
      c.push_back({{rt(rng, {2, 9}, d, dev, lo, hi), rt(rng, {9}, DType::kF32, dev, blo, bhi)},
                   attrs,
                   1,
                   "promotion to f32"});
    return c;
  };
}

CaseGenerator reduce(std::vector<Attrs> variants, double lo = -3, double hi = 3) {
  return [=](Rng& rng, DType d, const Device& dev) {
    Cases c;
    for (const Attrs& a : variants) {
      Tensor x = rt(rng, {5, 6, 7}, d, dev, lo, hi);
      auto dims = a.get_ints("dims", {});
      int64_t k = 1;
      if (dims.empty() && a.has("dim")) dims = {a.get_int("dim", 0)};
      for (int64_t dd : dims) k *= x.size(static_cast<int>(dd < 0 ? dd + 3 : dd));
      if (dims.empty()) k = x.numel();
      c.push_back({{x}, a, k, "contiguous"});
      c.push_back({{rt(rng, {5, 6, 7}, d, dev, lo, hi, true)}, a, k, "strided"});
    }
    return c;
  };
}

Attrs dims(std::vector<int64_t> d, bool keep = false) {
  return Attrs{{"dims", d}, {"keepdim", keep}};
}

Tensor index_tensor(Rng& rng, const Shape& s, int64_t n, const Device& dev, DType d = DType::kI64) {
  std::vector<double> v(static_cast<size_t>(shape_numel(s)));
  for (auto& e : v) e = static_cast<double>(rng.integer(0, n - 1));
  return make_tensor(v, s, d, dev);
}

Cases norm_cases(Rng& rng, DType d, const Device& dev, const std::string& op) {
  Cases c;
  for (Shape s : {Shape{3, 67}, Shape{2, 3, 256}, Shape{1, 1}}) {
    int64_t n = s.back();
    Tensor x = rt(rng, s, d, dev);
    Tensor xs = rt(rng, s, d, dev, -3, 3, true);
    Tensor w = rt(rng, {n}, d, dev), b = rt(rng, {n}, d, dev);
    if (op == "softmax" || op == "log_softmax") {
      c.push_back({{x}, {{"dim", -1}}, n, "last dim"});
      c.push_back({{xs}, {{"dim", 0}}, s[0], "strided, first dim"});
    } else if (op == "rms_norm") {
      c.push_back({{x, w}, {{"eps", 1e-6}}, n, "weighted"});
      c.push_back({{xs, Tensor()}, {{"eps", 1e-5}}, n, "strided, no weight"});
    } else if (op == "layer_norm") {
      c.push_back({{x, w, b}, {{"eps", 1e-5}}, n, "affine"});
      c.push_back({{xs}, {{"eps", 1e-5}}, n, "strided, plain"});
    } else if (op == "add_rms_norm") {
      c.push_back({{x, rt(rng, s, d, dev), w}, {{"eps", 1e-6}}, n, "residual"});
    }
  }
  return c;
}

Cases attention_cases(Rng& rng, DType d, const Device& dev) {
  Cases c;
  struct Shape4 {
    int64_t b, hq, hk, lq, lk, dim;
    bool causal, bottom_right;
    const char* label;
  };
  for (Shape4 s : {Shape4{1, 4, 2, 7, 7, 64, true, false, "causal prefill GQA 4/2, d64"},
                   Shape4{2, 2, 2, 1, 19, 80, false, false, "decode over 19 keys, d80"},
                   Shape4{1, 3, 1, 5, 13, 96, true, true, "MQA chunked prefill bottom-right, d96"},
                   Shape4{1, 2, 1, 3, 9, 128, false, false, "d128 with mask"},
                   // Prefill lengths that reach the tiled (flash) kernels with partial tiles.
                   Shape4{1, 4, 2, 70, 70, 64, true, false, "causal prefill 70, GQA, d64"},
                   Shape4{2, 2, 1, 33, 77, 128, true, true, "chunked prefill 33 over 77, d128"},
                   Shape4{1, 2, 2, 20, 20, 80, false, false, "prefill 20, d80"},
                   Shape4{1, 1, 1, 17, 40, 256, true, true, "bottom-right 17 over 40, d256"},
                   Shape4{1, 2, 1, 1, 1100, 64, false, false, "decode over 1100 keys, d64"}}) {
    Tensor q = rt(rng, {s.b, s.hq, s.lq, s.dim}, d, dev, -1, 1);
    Tensor k = rt(rng, {s.b, s.hk, s.lk, s.dim}, d, dev, -1, 1);
    Tensor v = rt(rng, {s.b, s.hk, s.lk, s.dim}, d, dev, -1, 1);
    Attrs a{{"causal", s.causal},
            {"causal_alignment", s.bottom_right ? "bottom_right" : "top_left"}};
    Tensor mask;
    if (std::string(s.label).find("mask") != std::string::npos) {
      std::vector<double> m(static_cast<size_t>(s.lq * s.lk));
      for (auto& e : m) e = rng.integer(0, 3) > 0 ? 1 : 0;
      for (int64_t i = 0; i < s.lq; ++i) m[i * s.lk] = 1;
      mask = make_tensor(m, {s.lq, s.lk}, DType::kBool, dev);
    }
    c.push_back({{q, k, v, mask}, a, s.lk * s.dim, s.label});
  }
  // Strided views: keys/values sliced out of a larger cache, as decode does.
  Tensor cache_k = rt(rng, {1, 2, 16, 64}, d, dev, -1, 1),
         cache_v = rt(rng, {1, 2, 16, 64}, d, dev, -1, 1);
  c.push_back(
      {{rt(rng, {1, 2, 1, 64}, d, dev, -1, 1), cache_k.narrow(2, 0, 11), cache_v.narrow(2, 0, 11)},
       {},
       11 * 64,
       "cache views"});
  return c;
}

Cases paged_cases(Rng& rng, DType d, const Device& dev) {
  int64_t blocks = 9, bs = 4, hk = 2, hq = 4, dim = 64, seqs = 3, max_blocks = 4;
  Tensor kc = rt(rng, {blocks, bs, hk, dim}, d, dev, -1, 1),
         vc = rt(rng, {blocks, bs, hk, dim}, d, dev, -1, 1);
  std::vector<double> table(static_cast<size_t>(seqs * max_blocks));
  for (auto& e : table) e = static_cast<double>(rng.integer(0, blocks - 1));
  Tensor bt = make_tensor(table, {seqs, max_blocks}, DType::kI32, dev);
  Tensor sl = make_tensor({13, 1, 16}, {seqs}, DType::kI32, dev);
  Cases c{{{rt(rng, {seqs, hq, dim}, d, dev, -1, 1), kc, vc, bt, sl}, {}, 16 * dim, "3 sequences"}};
  // Long sequences, as decode kernels that split the keys over several blocks see them.
  int64_t long_blocks = 80, long_bs = 16, long_max = 75;
  Tensor lkc = rt(rng, {long_blocks, long_bs, 1, dim}, d, dev, -1, 1),
         lvc = rt(rng, {long_blocks, long_bs, 1, dim}, d, dev, -1, 1);
  std::vector<double> long_table(static_cast<size_t>(2 * long_max));
  for (auto& e : long_table) e = static_cast<double>(rng.integer(0, long_blocks - 1));
  c.push_back({{rt(rng, {2, 2, dim}, d, dev, -1, 1), lkc, lvc,
                make_tensor(long_table, {2, long_max}, DType::kI64, dev),
                make_tensor({1200, 777}, {2}, DType::kI64, dev)},
               {},
               1200 * dim,
               "2 sequences of 1200 and 777 tokens"});
  return c;
}

Cases gemm_cases(Rng& rng, DType d, const Device& dev, const std::string& op) {
  Cases c;
  for (auto [m, k, n] :
       {std::tuple<int64_t, int64_t, int64_t>{7, 13, 5}, {33, 65, 17}, {1, 128, 70}}) {
    Tensor a = rt(rng, {m, k}, d, dev, -1, 1), b = rt(rng, {k, n}, d, dev, -1, 1);
    std::string l = std::to_string(m) + "x" + std::to_string(k) + "x" + std::to_string(n);
    if (op == "mm") {
      c.push_back({{a, b}, {}, k, l});
      c.push_back({{rt(rng, {k, m}, d, dev, -1, 1).t(), rt(rng, {n, k}, d, dev, -1, 1).t()},
                   {},
                   k,
                   l + " transposed views"});
    } else if (op == "linear") {
      c.push_back({{a, rt(rng, {n, k}, d, dev, -1, 1), rt(rng, {n}, d, dev, -1, 1)},
                   {},
                   k,
                   l + " with bias"});
      c.push_back({{rt(rng, {2, m, k}, d, dev, -1, 1, true), rt(rng, {n, k}, d, dev, -1, 1)},
                   {},
                   k,
                   l + " 3-d strided"});
    } else if (op == "addmm") {
      c.push_back({{rt(rng, {n}, d, dev, -1, 1), a, b}, {{"beta", 0.5}, {"alpha", 2.0}}, k, l});
    } else if (op == "bmm") {
      c.push_back(
          {{rt(rng, {3, m, k}, d, dev, -1, 1), rt(rng, {3, k, n}, d, dev, -1, 1)}, {}, k, l});
    } else if (op == "matmul") {
      c.push_back({{rt(rng, {2, 1, m, k}, d, dev, -1, 1), rt(rng, {3, k, n}, d, dev, -1, 1)},
                   {},
                   k,
                   l + " broadcast batch"});
      c.push_back({{rt(rng, {k}, d, dev, -1, 1), b}, {}, k, l + " vector @ matrix"});
    }
  }
  if (op == "linear")  // decode-shaped: few rows over a long k (cuda's 16-byte GEMV path)
    c.push_back({{rt(rng, {5, 2056}, d, dev, -1, 1), rt(rng, {67, 2056}, d, dev, -1, 1),
                  rt(rng, {67}, d, dev, -1, 1)},
                 {},
                 2056,
                 "5x2056x67 with bias"});
  return c;
}

std::map<std::string, CaseGenerator> make_generators() {
  std::map<std::string, CaseGenerator> g;
  for (const char* op : {"abs", "neg", "exp", "sin", "cos", "tanh", "sigmoid", "relu", "silu",
                         "floor", "ceil", "trunc", "reciprocal", "contiguous"})
    g[op] = unary();
  g["log"] = unary(0.01, 5);
  g["sqrt"] = unary(0, 5);
  g["rsqrt"] = unary(0.01, 5);
  g["gelu"] = [](Rng& rng, DType d, const Device& dev) {
    Cases c = unary(-4, 4, {{"approximate", "none"}})(rng, d, dev);
    for (auto& e : unary(-4, 4, {{"approximate", "tanh"}})(rng, d, dev)) c.push_back(e);
    return c;
  };
  g["cast"] = [](Rng& rng, DType d, const Device& dev) {
    Cases c;
    for (DType to :
         {DType::kF32, DType::kF16, DType::kBF16, DType::kI32, DType::kI8, DType::kBool}) {
      Attrs a{{"dtype", std::string(dtype_name(to))}};
      c.push_back(
          {{rt(rng, {3, 41}, d, dev, -100, 100)}, a, 1, "to " + std::string(dtype_name(to))});
      c.push_back({{rt(rng, {4, 5}, d, dev, -100, 100, true)},
                   a,
                   1,
                   "strided to " + std::string(dtype_name(to))});
    }
    return c;
  };
  for (const char* op :
       {"add", "sub", "mul", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge"})
    g[op] = binary();
  g["add"] = [](Rng& rng, DType d, const Device& dev) {
    Cases c = binary()(rng, d, dev);
    c.push_back({{rt(rng, {7}, d, dev), rt(rng, {7}, d, dev)}, {{"alpha", 2}}, 1, "alpha"});
    return c;
  };
  g["div"] = binary(-3, 3, 0.5, 3);
  g["sum"] = reduce({dims({}), dims({1}), dims({0, 2}, true), dims({-1})});
  g["mean"] = g["sum"];
  g["amax"] = reduce({dims({}), dims({2}), dims({0, 1}, true)});
  g["amin"] = g["amax"];
  g["argmax"] = reduce({Attrs{{"dim", 2}}, Attrs{{"dim", 0}, {"keepdim", true}}});
  g["argmin"] = g["argmax"];
  g["max"] = reduce({Attrs{{"dim", -1}}, Attrs{{"dim", 1}, {"keepdim", true}}});
  g["min"] = g["max"];
  for (const char* op : {"softmax", "log_softmax", "rms_norm", "layer_norm", "add_rms_norm"}) {
    std::string name = op;
    g[op] = [name](Rng& rng, DType d, const Device& dev) { return norm_cases(rng, d, dev, name); };
  }
  for (const char* op : {"silu_and_mul", "gelu_and_mul"}) {
    g[op] = [](Rng& rng, DType d, const Device& dev) {
      return Cases{{{rt(rng, {5, 2 * 37}, d, dev)}, {{"approximate", "tanh"}}, 1, "rows"},
                   {{rt(rng, {2, 3, 2 * 64}, d, dev, -3, 3, true)}, {}, 1, "strided"}};
    };
  }
  g["rotary_embedding"] = [](Rng& rng, DType d, const Device& dev) {
    Cases c;
    auto tables =
        call("rope_cache", {}, {{"max_positions", 64}, {"rotary_dim", 48}, {"device", dev.spec()}});
    auto full =
        call("rope_cache", {}, {{"max_positions", 64}, {"rotary_dim", 64}, {"device", dev.spec()}});
    for (const char* style : {"neox", "gptj"}) {
      Tensor pos = index_tensor(rng, {7}, 64, dev);
      c.push_back({{rt(rng, {7, 3, 64}, d, dev), pos, full[0], full[1]},
                   {{"style", style}},
                   1,
                   "full rotary"});
      c.push_back({{rt(rng, {2, 7, 3, 64}, d, dev, -3, 3, true),
                    index_tensor(rng, {2, 7}, 64, dev, DType::kI32), tables[0], tables[1]},
                   {{"style", style}},
                   1,
                   "partial rotary, strided, batched"});
    }
    return c;
  };
  g["embedding"] = [](Rng& rng, DType d, const Device& dev) {
    return Cases{
        {{index_tensor(rng, {3, 5}, 11, dev), rt(rng, {11, 37}, d, dev)}, {}, 1, "2-d indices"},
        {{index_tensor(rng, {4}, 11, dev, DType::kI32), rt(rng, {11, 16}, d, dev, -3, 3, true)},
         {},
         1,
         "i32 indices, strided table"}};
  };
  for (const char* op : {"mm", "linear", "addmm", "bmm", "matmul"}) {
    std::string name = op;
    g[op] = [name](Rng& rng, DType d, const Device& dev) { return gemm_cases(rng, d, dev, name); };
  }
  g["scaled_dot_product_attention"] = attention_cases;
  g["paged_attention"] = paged_cases;
  g["sample"] = [](Rng& rng, DType d, const Device& dev) {
    Cases c;
    int64_t seed = rng.integer(0, 1 << 30);
    for (Attrs a :
         {Attrs{{"temperature", 0.0}}, Attrs{{"temperature", 0.8}},
          Attrs{{"temperature", 1.0}, {"top_k", 5}}, Attrs{{"temperature", 1.2}, {"top_p", 0.7}},
          Attrs{{"temperature", 1.0}, {"min_p", 0.1}, {"top_k", 20}, {"top_p", 0.9}}}) {
      a.set("seed", seed);
      c.push_back({{rt(rng, {6, 101}, d, dev, -4, 4)}, a, 1, "6 rows of 101"});
    }
    return c;
  };
  // Seeded draws: every device must give the reference's indices, the same stream everywhere.
  g["multinomial"] = [](Rng& rng, DType d, const Device& dev) {
    int64_t seed = rng.integer(0, 1 << 30);
    return Cases{{{rt(rng, {5, 33}, d, dev, 0.05, 1)},
                  {{"num_samples", 7}, {"replacement", true}, {"seed", seed}, {"offset", 3}},
                  1,
                  "5 rows of 33 with replacement"},
                 {{rt(rng, {4, 19}, d, dev, 0.05, 1)},
                  {{"num_samples", 6}, {"replacement", false}, {"seed", seed}},
                  1,
                  "4 rows of 19 without replacement"}};
  };
  g["topk"] = [](Rng& rng, DType d, const Device& dev) {
    return Cases{{{rt(rng, {4, 37}, d, dev)}, {{"k", 5}}, 1, "last dim"},
                 {{rt(rng, {9, 6}, d, dev, -3, 3, true)},
                  {{"k", 3}, {"dim", 0}, {"largest", false}},
                  1,
                  "strided dim 0 smallest"}};
  };
  g["cat"] = [](Rng& rng, DType d, const Device& dev) {
    return Cases{
        {{rt(rng, {3, 5}, d, dev), rt(rng, {3, 2}, d, dev, -3, 3, true), rt(rng, {3, 1}, d, dev)},
         {{"dim", 1}},
         1,
         "dim 1"},
        {{rt(rng, {2, 4}, d, dev), rt(rng, {5, 4}, d, dev)}, {{"dim", 0}}, 1, "dim 0"}};
  };
  for (const char* op : {"rand", "randn"}) {
    g[op] = [](Rng& rng, DType d, const Device& dev) {
      return Cases{{{},
                    {{"shape", std::vector<int64_t>{3, 77}},
                     {"seed", rng.integer(0, 1 << 30)},
                     {"offset", 5},
                     {"dtype", std::string(dtype_name(d))},
                     {"device", dev.spec()}},
                    1,
                    "3x77"}};
    };
  }
  g["cross_entropy"] = [](Rng& rng, DType d, const Device& dev) {
    std::vector<double> t{3, -100, 0, 36, 5, 17};  // one ignored row
    Tensor target = make_tensor(t, {6}, DType::kI64, dev);
    Cases c;
    c.push_back({{rt(rng, {6, 37}, d, dev, -4, 4), target}, {}, 37, "mean, ignore_index"});
    c.push_back({{rt(rng, {6, 37}, d, dev, -4, 4), index_tensor(rng, {6}, 37, dev, DType::kI32)},
                 {{"reduction", "none"}, {"label_smoothing", 0.1}},
                 37,
                 "none, smoothing"});
    c.push_back({{rt(rng, {4, 300}, d, dev, -4, 4), index_tensor(rng, {4}, 300, dev)},
                 {{"reduction", "sum"}},
                 300,
                 "sum"});
    return c;
  };
  g["linear_int8"] = [](Rng& rng, DType d, const Device& dev) {
    Cases c;
    for (auto [m, k, n] :
         {std::tuple<int64_t, int64_t, int64_t>{1, 67, 9}, {3, 256, 33}, {20, 64, 7}}) {
      Tensor w = random_tensor(rng, {n, k}, DType::kI8, dev, -127, 127);
      Tensor scale = rt(rng, {n}, d, dev, 0.001, 0.02);
      c.push_back({{rt(rng, {m, k}, d, dev, -1, 1), w, scale, rt(rng, {n}, d, dev, -1, 1)},
                   {},
                   k,
                   std::to_string(m) + " rows, bias"});
    }
    return c;
  };
  g["linear_quantized"] = [](Rng& rng, DType d, const Device& dev) {
    Cases c;
    for (DType q : {DType::kQ8_0, DType::kQ4_0})
      for (auto [m, k, n] :
           {std::tuple<int64_t, int64_t, int64_t>{1, 64, 9}, {2, 256, 17}, {19, 96, 5}}) {
        // Random blocks: an f16 scale in [0.005, 0.02) then random quants.
        size_t block = dtype_info(q).block_bytes;
        std::vector<uint8_t> bytes(static_cast<size_t>(n * k / 32) * block);
        for (size_t b = 0; b < bytes.size(); b += block) {
          uint16_t h = Half(static_cast<float>(rng.uniform(0.005, 0.02))).bits;
          std::memcpy(&bytes[b], &h, 2);
          for (size_t j = 2; j < block; ++j)
            bytes[b + j] = static_cast<uint8_t>(rng.integer(0, 255));
        }
        Tensor w = Tensor::from_host(bytes.data(), bytes.size(), {n, k}, q, dev);
        c.push_back({{rt(rng, {m, k}, d, dev, -1, 1), w},
                     {},
                     k,
                     std::string(dtype_name(q)) + " " + std::to_string(m) + " rows"});
      }
    return c;
  };
  add_generated_parity_cases(g);
  add_movement_parity_cases(g);
  return g;
}

}  // namespace

const std::map<std::string, CaseGenerator>& parity_generators() {
  static const auto generators = make_generators();
  return generators;
}

}  // namespace flagstone::ops::testing
