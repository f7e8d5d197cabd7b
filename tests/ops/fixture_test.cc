// Checks the float64 reference implementations against PyTorch: every case of
// tests/data/ops/<family>.json (written by tools/fixtures/make_ops_fixtures.py with torch 1.13)
// is replayed through ops::call_reference and compared under the shared tolerances.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "ops/ops_test_util.h"

namespace flagstone::ops {
namespace {

using nlohmann::json;

double parse_value(const json& v) {
  if (v.is_string()) {
    std::string s = v.get<std::string>();
    if (s == "nan") return NAN;
    if (s == "inf") return INFINITY;
    if (s == "-inf") return -INFINITY;
  }
  return v.get<double>();
}

Tensor parse_tensor(const json& t) {
  if (t.is_null()) return Tensor();
  std::vector<double> values;
  for (const auto& v : t["data"]) values.push_back(parse_value(v));
  return testing::make_tensor(values, t["shape"].get<Shape>(),
                              parse_dtype(t["dtype"].get<std::string>()));
}

Attrs parse_attrs(const json& a) {
  Attrs attrs;
  for (const auto& [key, v] : a.items()) {
    if (v.is_boolean())
      attrs.set(key, v.get<bool>());
    else if (v.is_number_integer())
      attrs.set(key, v.get<int64_t>());
    else if (v.is_number())
      attrs.set(key, v.get<double>());
    else if (v.is_string())
      attrs.set(key, v.get<std::string>());
    else if (v.is_array() &&
             std::all_of(v.begin(), v.end(), [](const json& e) { return e.is_number_integer(); }))
      attrs.set(key, v.get<std::vector<int64_t>>());
    else if (v.is_array())
      attrs.set(key, v.get<std::vector<double>>());
  }
  return attrs;
}

class FixtureTest : public ::testing::TestWithParam<std::string> {};

TEST_P(FixtureTest, ReferenceMatchesPyTorch) {
  std::string path = std::string(FLAGSTONE_OPS_FIXTURE_DIR) + "/" + GetParam() + ".json";
  std::ifstream in(path);
  ASSERT_TRUE(in.good()) << "missing fixture " << path;
  json doc = json::parse(in);
  int checked = 0;
  for (const auto& c : doc["cases"]) {
    std::string op = c["op"].get<std::string>();
    std::vector<Tensor> inputs;
    for (const auto& t : c["inputs"]) inputs.push_back(parse_tensor(t));
    Attrs attrs = parse_attrs(c["attrs"]);
    std::string where = op + " " + attrs.to_string() + " (" + c["note"].get<std::string>() + ")";
    std::vector<Tensor> outputs;
    try {
      outputs = call_reference(op, inputs, attrs);
    } catch (const Error& e) {
      ADD_FAILURE() << where << ": " << e.what();
      continue;
    }
    ASSERT_EQ(outputs.size(), c["outputs"].size()) << where;
    int64_t in_elements = 0;
    for (const Tensor& t : inputs) in_elements += t.defined() ? t.numel() : 0;
    for (size_t i = 0; i < outputs.size(); ++i) {
      Tensor expected = parse_tensor(c["outputs"][i]);
      int64_t k = expected.numel() ? in_elements / expected.numel() : 1;
      std::string diff =
          testing::compare(outputs[i], expected, testing::tolerance(expected.dtype(), k));
      EXPECT_TRUE(diff.empty()) << where << " output " << i << ": " << diff;
    }
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

INSTANTIATE_TEST_SUITE_P(Families, FixtureTest,
                         ::testing::Values("unary", "binary", "reduction", "scan", "norm", "llm",
                                           "attention", "sort", "linalg", "movement", "factory"));

}  // namespace
}  // namespace flagstone::ops
