// Safetensors: hand-made files read correctly, the writer's output follows the format, sharded
// folders resolve, every malformed header gives kFormat naming file and tensor, and files written
// by the reference `safetensors` library (tests/data/format) read back to their recorded values.
#include "flagstone/engine/format/safetensors.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/format/test_util.h"
#include "flagstone/base/half.h"
#include "flagstone/runtime/device.h"

namespace flagstone::engine::format {
namespace {

using testing::Bytes;
using testing::ScratchDir;

// A file built byte by byte: the header text is written here, not by our writer.
std::vector<std::byte> hand_made_file(const std::string& header,
                                      const std::vector<std::byte>& data) {
  Bytes b;
  b.u64(header.size()).text(header);
  b.data.insert(b.data.end(), data.begin(), data.end());
  return b.data;
}

SafetensorsFile parse_bytes(const std::vector<std::byte>& bytes, const std::string& name) {
  return SafetensorsFile::parse(MappedFile::from_bytes(name, bytes));
}

TEST(Safetensors, ReadsHandMadeFile) {
  Bytes data;
  for (float v : {1.0f, -2.5f, 3.25f, 0.0f, 100.0f, -7.0f}) data.put(v);  // "w": f32 [2, 3]
  data.put<int64_t>(-5).put<int64_t>(1LL << 40);                          // "ids": i64 [2]
  data.put<uint16_t>(0x3c00).put<uint16_t>(0xc000);                       // "h": f16 [2]
  std::string header =
      R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
      R"("ids":{"dtype":"I64","shape":[2],"data_offsets":[24,40]},)"
      R"("h":{"dtype":"F16","shape":[2],"data_offsets":[40,44]}})";
  SafetensorsFile file = parse_bytes(hand_made_file(header, data.data), "hand.safetensors");
  EXPECT_EQ(file.metadata().at("format"), "pt");
  ASSERT_EQ(file.tensors().size(), 3u);
  EXPECT_EQ(file.tensors()[0].name, "w");  // sorted by offset
  EXPECT_EQ(file.data_offset(), 8 + header.size());
  const SafetensorsTensorInfo& w = file.info("w");
  EXPECT_EQ(w.dtype, DType::kF32);
  EXPECT_EQ(w.shape, (Shape{2, 3}));
  EXPECT_EQ(file.info("ids").dtype, DType::kI64);
  EXPECT_EQ(file.info("h").dtype, DType::kF16);

  // Zero-copy view: the span points into the file image at data_offset + begin.
  auto bytes = file.data("ids");
  ASSERT_EQ(bytes.size(), 16u);
  int64_t ids[2];
  std::memcpy(ids, bytes.data(), 16);
  EXPECT_EQ(ids[0], -5);
  EXPECT_EQ(ids[1], 1LL << 40);

  for (const Device& device : runtime::all_devices()) {
    SCOPED_TRACE(device.spec());
    Tensor t = file.load("w", device);
    EXPECT_EQ(t.device(), device);
    EXPECT_EQ(t.shape(), (Shape{2, 3}));
    EXPECT_EQ(t.to_vector<float>(), (std::vector<float>{1.0f, -2.5f, 3.25f, 0.0f, 100.0f, -7.0f}));
    Tensor h = file.load("h", device);
    std::vector<double> hv = h.to_double_vector();
    EXPECT_EQ(hv, (std::vector<double>{1.0, -2.0}));
  }
  EXPECT_FS_ERROR(file.info("missing"), kNotFound, "missing", "hand.safetensors");
}

TEST(Safetensors, WriterOutputFollowsTheFormat) {
  SafetensorsWriter writer;
  writer.set_metadata("format", "pt");
  std::vector<uint16_t> b16 = {0x3f80, 0x4000, 0xbf80};  // bf16 1, 2, -1
  std::vector<double> f64 = {0.5, -1.25};
  std::vector<uint8_t> flags = {1, 0, 1, 1, 0};
  writer.add("b", DType::kBF16, {3}, std::as_bytes(std::span(b16)));
  writer.add("flags", DType::kBool, {5}, std::as_bytes(std::span(flags)));
  writer.add("d", DType::kF64, {1, 2}, std::as_bytes(std::span(f64)));
  std::vector<std::byte> image = writer.serialize();

  // Check the layout with an independent JSON parse of the header.
  uint64_t header_len = 0;
  std::memcpy(&header_len, image.data(), 8);
  EXPECT_EQ((8 + header_len) % 8, 0u) << "data section must start 8-byte aligned";
  auto header = nlohmann::json::parse(std::string(reinterpret_cast<const char*>(image.data() + 8),
                                                  static_cast<size_t>(header_len)));
  EXPECT_EQ(header["__metadata__"]["format"], "pt");
  EXPECT_EQ(header["d"]["dtype"], "F64");
  EXPECT_EQ(header["b"]["dtype"], "BF16");
  EXPECT_EQ(header["flags"]["dtype"], "BOOL");
  // Contiguous, no holes, and f64 first so that it is 8-byte aligned.
  EXPECT_EQ(header["d"]["data_offsets"], nlohmann::json::array({0, 16}));
  EXPECT_EQ(header["b"]["data_offsets"], nlohmann::json::array({16, 22}));
  EXPECT_EQ(header["flags"]["data_offsets"], nlohmann::json::array({22, 27}));
  EXPECT_EQ(image.size(), 8 + header_len + 27);

  ScratchDir dir;
  writer.write(dir.file("w.safetensors"));
  SafetensorsFile file = SafetensorsFile::open(dir.file("w.safetensors"));
  EXPECT_EQ(file.load("d").to_vector<double>(), f64);
  EXPECT_EQ(file.load("b").to_double_vector(), (std::vector<double>{1.0, 2.0, -1.0}));
  EXPECT_EQ(file.load("flags").to_double_vector(), (std::vector<double>{1, 0, 1, 1, 0}));
  EXPECT_EQ(file.metadata().at("format"), "pt");
}

TEST(Safetensors, WriterRejectsBadInput) {
  SafetensorsWriter writer;
  std::vector<float> four(4);
  EXPECT_FS_ERROR(writer.add("x", DType::kF32, {5}, std::as_bytes(std::span(four))),
                  kInvalidArgument, "x", "20", "16");
  writer.add("x", DType::kF32, {2, 2}, std::as_bytes(std::span(four)));
  EXPECT_FS_ERROR(writer.add("x", DType::kF32, {4}, std::as_bytes(std::span(four))),
                  kInvalidArgument, "twice");
  std::vector<std::byte> q(34);
  EXPECT_FS_ERROR(writer.add("q", DType::kQ8_0, {32}, q), kUnsupported, "q8_0");
}

TEST(Safetensors, WritesTensorsFromEveryDevice) {
  for (const Device& device : runtime::all_devices()) {
    SCOPED_TRACE(device.spec());
    std::vector<float> values = {1, 2, 3, 4, 5, 6};
    Tensor t = Tensor::from_vector(values, {2, 3}, device).t();  // non-contiguous view
    SafetensorsWriter writer;
    writer.add("t", t);
    SafetensorsFile file =
        SafetensorsFile::parse(MappedFile::from_bytes("mem", writer.serialize()));
    EXPECT_EQ(file.info("t").shape, (Shape{3, 2}));
    EXPECT_EQ(file.load("t").to_vector<float>(), (std::vector<float>{1, 4, 2, 5, 3, 6}));
  }
}

TEST(Safetensors, ShardedFolder) {
  ScratchDir dir;
  std::vector<float> a = {1, 2}, b = {3, 4, 5};
  SafetensorsWriter first, second;
  first.add("a", DType::kF32, {2}, std::as_bytes(std::span(a)));
  second.add("b", DType::kF32, {3}, std::as_bytes(std::span(b)));
  first.write(dir.file("model-00001-of-00002.safetensors"));
  second.write(dir.file("model-00002-of-00002.safetensors"));
  write_safetensors_index(
      dir.file("model.safetensors.index.json"),
      {{"a", "model-00001-of-00002.safetensors"}, {"b", "model-00002-of-00002.safetensors"}}, 20);
  SafetensorsModel model = SafetensorsModel::open(dir.path().string());
  EXPECT_EQ(model.shards().size(), 2u);
  EXPECT_EQ(model.tensor_names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(model.load("a").to_vector<float>(), a);
  EXPECT_EQ(model.load("b").to_vector<float>(), b);
  EXPECT_NE(model.shard_of("b").path().find("00002"), std::string::npos);
  EXPECT_FS_ERROR(model.info("c"), kNotFound, "'c'");

  // An index naming a tensor its shard lacks.
  testing::write_text(dir.file("bad.index.json"),
                      R"({"weight_map":{"b":"model-00001-of-00002.safetensors"}})");
  EXPECT_FS_ERROR(SafetensorsModel::open(dir.file("bad.index.json")), kFormat, "bad.index.json",
                  "'b'", "does not contain");
  testing::write_text(dir.file("escape.index.json"), R"({"weight_map":{"a":"../secret"}})");
  EXPECT_FS_ERROR(SafetensorsModel::open(dir.file("escape.index.json")), kFormat, "../secret");
  testing::write_text(dir.file("nomap.index.json"), R"({"metadata":{}})");
  EXPECT_FS_ERROR(SafetensorsModel::open(dir.file("nomap.index.json")), kFormat, "weight_map");
  testing::write_text(dir.file("missing.index.json"), R"({"weight_map":{"a":"gone.safetensors"}})");
  EXPECT_FS_ERROR(SafetensorsModel::open(dir.file("missing.index.json")), kNotFound,
                  "gone.safetensors");

  ScratchDir empty_dir_holder;
  std::filesystem::create_directories(empty_dir_holder.file("empty"));
  EXPECT_FS_ERROR(SafetensorsModel::open(empty_dir_holder.file("empty")), kNotFound,
                  "model.safetensors");
}

struct BadHeaderCase {
  const char* label;
  std::string header;
  size_t data_bytes;
  std::vector<const char*> expected_parts;
};

TEST(Safetensors, MalformedHeadersNameFileTensorAndProblem) {
  const std::vector<BadHeaderCase> cases = {
      {"not json", R"({"w":{"dtype":"F32",)", 0, {"not valid JSON"}},
      {"not object", R"([1,2,3])", 0, {"not a JSON object"}},
      {"unknown dtype",
       R"({"w":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})",
       2,
       {"'w'", "F8_E4M3"}},
      {"missing dtype", R"({"w":{"shape":[2],"data_offsets":[0,8]}})", 8, {"'w'", "dtype"}},
      {"negative shape",
       R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})",
       8,
       {"'w'", "shape"}},
      {"bad offsets",
       R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}})",
       8,
       {"'w'", "data_offsets"}},
      {"past end",
       R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})",
       8,
       {"'w'", "run past", "truncated"}},
      {"reversed",
       R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})",
       8,
       {"'w'", "end before"}},
      {"size mismatch",
       R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})",
       12,
       {"'w'", "8 bytes", "needs 12"}},
      {"overlap",
       R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
       R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
       12,
       {"'a'", "'b'", "overlap"}},
      {"overflow",
       R"({"w":{"dtype":"F64","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}})",
       8,
       {"'w'", "overflow"}},
      {"metadata not string", R"({"__metadata__":{"k":1}})", 0, {"__metadata__", "\"k\""}},
  };
  for (const BadHeaderCase& c : cases) {
    SCOPED_TRACE(c.label);
    std::vector<std::byte> file = hand_made_file(c.header, std::vector<std::byte>(c.data_bytes));
    try {
      parse_bytes(file, "bad.safetensors");
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kFormat) << e.what();
      EXPECT_NE(e.message().find("bad.safetensors"), std::string::npos) << e.message();
      for (const char* part : c.expected_parts) {
        EXPECT_NE(e.message().find(part), std::string::npos) << part << " in " << e.message();
      }
    }
  }
}

TEST(Safetensors, TruncatedAndOversizedHeaders) {
  std::vector<std::byte> short_file(5);
  EXPECT_FS_ERROR(parse_bytes(short_file, "short.safetensors"), kFormat, "short.safetensors",
                  "too short");
  Bytes huge;
  huge.u64(1ull << 60).text("{}");
  EXPECT_FS_ERROR(parse_bytes(huge.data, "huge.safetensors"), kFormat, "huge.safetensors",
                  "header length");
  EXPECT_FS_ERROR(SafetensorsFile::open("/nonexistent/x.safetensors"), kNotFound,
                  "/nonexistent/x.safetensors");
}

// --- Fixtures written by the reference safetensors library -------------------------------------

std::string fixture(const std::string& name) {
  return std::string(FLAGSTONE_TEST_DATA) + "/format/" + name;
}

nlohmann::json load_expected() {
  std::ifstream in(fixture("expected.json"));
  return nlohmann::json::parse(in);
}

double expected_value(const nlohmann::json& v) {
  if (v.is_string()) return v == "inf" ? INFINITY : -INFINITY;
  return v.get<double>();
}

DType dtype_from_torch(const std::string& name) {
  static const std::map<std::string, DType> kMap = {
      {"float64", DType::kF64},   {"float32", DType::kF32}, {"float16", DType::kF16},
      {"bfloat16", DType::kBF16}, {"int64", DType::kI64},   {"int32", DType::kI32},
      {"int16", DType::kI16},     {"int8", DType::kI8},     {"uint8", DType::kU8},
      {"bool", DType::kBool}};
  return kMap.at(name);
}

void check_file_against_expected(const std::string& file_name) {
  if (!std::filesystem::exists(fixture(file_name)) ||
      !std::filesystem::exists(fixture("expected.json"))) {
    GTEST_SKIP() << "fixture " << fixture(file_name)
                 << " missing: run tools/fixtures/make_format_fixtures.py";
  }
  nlohmann::json expected = load_expected()[file_name];
  SafetensorsFile file = SafetensorsFile::open(fixture(file_name));
  if (expected.contains("metadata")) {
    for (const auto& [key, value] : expected["metadata"].items()) {
      EXPECT_EQ(file.metadata().at(key), value.get<std::string>());
    }
  }
  EXPECT_EQ(file.tensors().size(), expected["tensors"].size());
  for (const auto& [name, entry] : expected["tensors"].items()) {
    SCOPED_TRACE(name);
    const SafetensorsTensorInfo& info = file.info(name);
    EXPECT_EQ(info.dtype, dtype_from_torch(entry["dtype"]));
    EXPECT_EQ(info.shape, entry["shape"].get<Shape>());
    for (const Device& device : runtime::all_devices()) {
      std::vector<double> got = file.load(name, device).to_double_vector();
      ASSERT_EQ(got.size(), entry["values"].size());
      for (size_t i = 0; i < got.size(); ++i) {
        double want = expected_value(entry["values"][i]);
        EXPECT_EQ(got[i], want) << device.spec() << " element " << i;
        EXPECT_EQ(std::signbit(got[i]), std::signbit(want)) << "element " << i;
      }
    }
  }
}

TEST(SafetensorsFixtures, TorchDtypes) {
  check_file_against_expected("dtypes.safetensors");
}

TEST(SafetensorsFixtures, NumpyFrontEnd) {
  check_file_against_expected("numpy.safetensors");
}

TEST(SafetensorsFixtures, ShardedTransformersModel) {
  if (!std::filesystem::exists(fixture("llama_sharded/model.safetensors.index.json"))) {
    GTEST_SKIP() << "fixture " << fixture("llama_sharded")
                 << " missing: run tools/fixtures/make_format_fixtures.py";
  }
  nlohmann::json expected = load_expected()["llama_sharded"]["tensors"];
  SafetensorsModel model = SafetensorsModel::open(fixture("llama_sharded"));
  EXPECT_GE(model.shards().size(), 2u);
  EXPECT_EQ(model.tensor_names().size(), expected.size());
  for (const auto& [name, entry] : expected.items()) {
    SCOPED_TRACE(name);
    EXPECT_NE(model.shard_of(name).path().find(entry["shard"].get<std::string>()),
              std::string::npos);
    EXPECT_EQ(model.info(name).shape, entry["shape"].get<Shape>());
    std::vector<double> values = model.load(name).to_double_vector();
    double sum = 0;
    for (double v : values) sum += v;
    EXPECT_NEAR(sum, entry["sum"].get<double>(), 1e-9 * (1 + std::fabs(sum)));
    for (size_t i = 0; i < entry["first"].size(); ++i) {
      EXPECT_EQ(values[i], entry["first"][i].get<double>());
    }
  }
}

}  // namespace
}  // namespace flagstone::engine::format
