// GGUF: files built byte by byte from the spec read back correctly (v2 and v3, every value
// type, alignment), the writer produces exactly those bytes, and every corruption gives kFormat
// naming the file, the key or tensor, and the problem.
#include "flagstone/engine/format/gguf.h"

#include <gtest/gtest.h>

#include "engine/format/test_util.h"
#include "flagstone/runtime/device.h"

namespace flagstone::engine::format {
namespace {

using testing::Bytes;

constexpr uint32_t kTypeF32 = 0, kTypeQ8_0 = 8, kTypeQ5_K = 13;

// Metadata value type ids from the spec.
enum : uint32_t { U8 = 0, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 };

GgufFile parse_bytes(const std::vector<std::byte>& bytes, const std::string& name = "t.gguf") {
  return GgufFile::parse(MappedFile::from_bytes(name, bytes));
}

// The reference file: every metadata type and two tensors, laid out by hand per the spec.
std::vector<std::byte> reference_file(uint32_t version) {
  Bytes b;
  b.text("GGUF").u32(version).u64(2).u64(16);
  b.gguf_string("general.architecture").u32(STR).gguf_string("llama");
  b.gguf_string("k.u8").u32(U8).u8(200);
  b.gguf_string("k.i8").u32(I8).put<int8_t>(-100);
  b.gguf_string("k.u16").u32(U16).put<uint16_t>(60000);
  b.gguf_string("k.i16").u32(I16).put<int16_t>(-30000);
  b.gguf_string("k.u32").u32(U32).u32(4000000000u);
  b.gguf_string("k.i32").u32(I32).put<int32_t>(-2000000000);
  b.gguf_string("k.f32").u32(F32).put<float>(0.25f);
  b.gguf_string("k.bool").u32(BOOL).u8(1);
  b.gguf_string("k.u64").u32(U64).u64(1ull << 63);
  b.gguf_string("k.i64").u32(I64).put<int64_t>(-(1LL << 62));
  b.gguf_string("k.f64").u32(F64).put<double>(-1.5e300);
  b.gguf_string("k.arr_i32")
      .u32(ARR)
      .u32(I32)
      .u64(3)
      .put<int32_t>(1)
      .put<int32_t>(-2)
      .put<int32_t>(3);
  b.gguf_string("k.arr_str")
      .u32(ARR)
      .u32(STR)
      .u64(3)
      .gguf_string("a")
      .gguf_string("")
      .gguf_string("héllo");
  b.gguf_string("k.arr_f32").u32(ARR).u32(F32).u64(2).put<float>(1.5f).put<float>(-0.5f);
  b.gguf_string("k.empty").u32(ARR).u32(U8).u64(0);
  // Tensor "a": f32, ne = [3, 2] (3 innermost), offset 0; "q": q8_0, ne = [32, 2], offset 32.
  b.gguf_string("a").u32(2).u64(3).u64(2).u32(kTypeF32).u64(0);
  b.gguf_string("q").u32(2).u64(32).u64(2).u32(kTypeQ8_0).u64(32);
  b.pad_to(32);
  for (int i = 0; i < 6; ++i) b.put<float>(static_cast<float>(i) - 2.0f);
  b.pad_to(32);
  for (int block = 0; block < 2; ++block) {
    b.put<uint16_t>(0x3800);  // f16 0.5
    for (int j = 0; j < 32; ++j) b.put<int8_t>(static_cast<int8_t>(j - 16 + block));
  }
  b.pad_to(32);
  return b.data;
}

TEST(Gguf, ReadsEveryValueTypeAndTensor) {
  for (uint32_t version : {2u, 3u}) {
    SCOPED_TRACE(version);
    GgufFile file = parse_bytes(reference_file(version));
    EXPECT_EQ(file.version(), version);
    EXPECT_EQ(file.alignment(), 32u);
    EXPECT_EQ(file.metadata().size(), 16u);
    EXPECT_EQ(file.metadata()[1].first, "k.u8");  // file order kept
    EXPECT_EQ(file.architecture(), "llama");
    EXPECT_EQ(file.get("k.u8").as_uint(), 200u);
    EXPECT_EQ(file.get("k.i8").as_int(), -100);
    EXPECT_EQ(file.get("k.u16").as_int(), 60000);
    EXPECT_EQ(file.get("k.i16").as_int(), -30000);
    EXPECT_EQ(file.get("k.u32").as_uint(), 4000000000u);
    EXPECT_EQ(file.get("k.i32").as_int(), -2000000000);
    EXPECT_EQ(file.get("k.f32").as_float(), 0.25);
    EXPECT_TRUE(file.get("k.bool").as_bool());
    EXPECT_EQ(file.get("k.u64").as_uint(), 1ull << 63);
    EXPECT_EQ(file.get("k.i64").as_int(), -(1LL << 62));
    EXPECT_EQ(file.get("k.f64").as_float(), -1.5e300);
    EXPECT_EQ(file.get("k.arr_i32").as_int_array(), (std::vector<int64_t>{1, -2, 3}));
    EXPECT_EQ(file.get("k.arr_str").as_string_array(),
              (std::vector<std::string>{"a", "", "héllo"}));
    EXPECT_EQ(file.get("k.arr_f32").as_float_array(), (std::vector<double>{1.5, -0.5}));
    EXPECT_EQ(file.get("k.arr_str").type_name(), "array[string]");
    EXPECT_EQ(file.get("k.empty").size(), 0u);
    EXPECT_FS_ERROR(file.get("k.arr_str").as_int(), kInvalidArgument, "array[string]");
    EXPECT_FS_ERROR(file.get("k.u64").as_int(), kInvalidArgument, "int64");
    EXPECT_FS_ERROR(file.get_string("k.u8"), kFormat, "t.gguf", "k.u8", "expected string");
    EXPECT_FS_ERROR(file.get("no.such.key"), kFormat, "t.gguf", "no.such.key");

    ASSERT_EQ(file.tensors().size(), 2u);
    const GgufTensorInfo& a = file.info("a");
    EXPECT_EQ(a.ne, (std::vector<uint64_t>{3, 2}));
    EXPECT_EQ(a.shape, (Shape{2, 3}));
    EXPECT_EQ(a.nbytes, 24u);
    const GgufTensorInfo& q = file.info("q");
    EXPECT_EQ(q.dtype, DType::kQ8_0);
    EXPECT_EQ(q.shape, (Shape{2, 32}));
    EXPECT_EQ(q.nbytes, 68u);
    EXPECT_EQ(file.data_offset() % 32, 0u);
    for (const Device& device : runtime::all_devices()) {
      SCOPED_TRACE(device.spec());
      EXPECT_EQ(file.load("a", device).to_vector<float>(),
                (std::vector<float>{-2, -1, 0, 1, 2, 3}));
      Tensor qt = file.load("q", device);
      EXPECT_EQ(qt.dtype(), DType::kQ8_0);
      EXPECT_EQ(qt.shape(), (Shape{2, 32}));
      std::vector<std::byte> raw(qt.nbytes());
      qt.copy_to_host(raw.data(), raw.size());
      auto span = file.data("q");
      EXPECT_TRUE(std::equal(raw.begin(), raw.end(), span.begin(), span.end()));
    }
  }
}

TEST(Gguf, WriterReproducesTheHandMadeFile) {
  GgufWriter writer;
  writer.set("general.architecture", GgufValue::string("llama"));
  writer.set("k.u8", GgufValue::scalar<uint8_t>(200));
  writer.set("k.i8", GgufValue::scalar<int8_t>(-100));
  writer.set("k.u16", GgufValue::scalar<uint16_t>(60000));
  writer.set("k.i16", GgufValue::scalar<int16_t>(-30000));
  writer.set("k.u32", GgufValue::scalar<uint32_t>(4000000000u));
  writer.set("k.i32", GgufValue::scalar<int32_t>(-2000000000));
  writer.set("k.f32", GgufValue::scalar<float>(0.25f));
  writer.set("k.bool", GgufValue::scalar<bool>(true));
  writer.set("k.u64", GgufValue::scalar<uint64_t>(1ull << 63));
  writer.set("k.i64", GgufValue::scalar<int64_t>(-(1LL << 62)));
  writer.set("k.f64", GgufValue::scalar<double>(-1.5e300));
  writer.set("k.arr_i32", GgufValue::array<int32_t>({1, -2, 3}));
  writer.set("k.arr_str", GgufValue::string_array({"a", "", "héllo"}));
  writer.set("k.arr_f32", GgufValue::array<float>({1.5f, -0.5f}));
  writer.set("k.empty", GgufValue::array<uint8_t>({}));
  std::vector<float> a = {-2, -1, 0, 1, 2, 3};
  writer.add_tensor("a", DType::kF32, {2, 3}, std::as_bytes(std::span(a)));
  Bytes q;
  for (int block = 0; block < 2; ++block) {
    q.put<uint16_t>(0x3800);
    for (int j = 0; j < 32; ++j) q.put<int8_t>(static_cast<int8_t>(j - 16 + block));
  }
  writer.add_tensor("q", kTypeQ8_0, {2, 32}, q.data);
  EXPECT_EQ(writer.serialize(), reference_file(3));

  testing::ScratchDir dir;
  writer.write(dir.file("w.gguf"));
  GgufFile file = GgufFile::open(dir.file("w.gguf"));
  EXPECT_EQ(file.metadata(), parse_bytes(reference_file(3)).metadata());

  EXPECT_FS_ERROR(writer.add_tensor("bad", kTypeQ8_0, {2, 16}, q.data), kInvalidArgument, "bad",
                  "multiple");
  EXPECT_FS_ERROR(writer.add_tensor("a", DType::kF32, {2, 3}, std::as_bytes(std::span(a))),
                  kInvalidArgument, "twice");
  EXPECT_FS_ERROR(writer.add_tensor("u", DType::kU8, {2}, std::vector<std::byte>(2)), kUnsupported,
                  "u8");
}

TEST(Gguf, CustomAlignment) {
  GgufWriter writer(64);
  std::vector<float> one = {1.0f}, two = {2.0f, 3.0f};
  writer.add_tensor("x", DType::kF32, {1}, std::as_bytes(std::span(one)));
  writer.add_tensor("y", DType::kF32, {2}, std::as_bytes(std::span(two)));
  GgufFile file = parse_bytes(writer.serialize());
  EXPECT_EQ(file.alignment(), 64u);
  EXPECT_EQ(file.get("general.alignment").type(), GgufValueType::kUint32);
  EXPECT_EQ(file.data_offset() % 64, 0u);
  EXPECT_EQ(file.info("y").offset, 64u);
  EXPECT_EQ(file.load("y").to_vector<float>(), two);
}

TEST(Gguf, UnsupportedTypeOpensButDoesNotLoad) {
  Bytes b;
  b.text("GGUF").u32(3).u64(1).u64(0);
  b.gguf_string("k5").u32(1).u64(256).u32(kTypeQ5_K).u64(0);
  b.pad_to(32);
  b.data.resize(b.data.size() + 176);
  GgufFile file = parse_bytes(b.data);
  EXPECT_FALSE(file.info("k5").dtype.has_value());
  EXPECT_EQ(file.info("k5").nbytes, 176u);
  EXPECT_FS_ERROR(file.load("k5"), kUnsupported, "k5", "Q5_K");
}

// One corruption per check of the reader; each must name the file and what is wrong.
TEST(Gguf, CorruptionsNameFileAndProblem) {
  struct Case {
    const char* label;
    std::vector<std::byte> bytes;
    ErrorCategory category;
    std::vector<const char*> parts;
  };
  auto header = [](uint64_t tensors, uint64_t kvs) {
    Bytes b;
    b.text("GGUF").u32(3).u64(tensors).u64(kvs);
    return b;
  };
  std::vector<Case> cases;
  cases.push_back(
      {"magic", Bytes().text("GGUX").u32(3).data, ErrorCategory::kFormat, {"not a GGUF"}});
  cases.push_back({"v1",
                   Bytes().text("GGUF").u32(1).u64(0).u64(0).data,
                   ErrorCategory::kUnsupported,
                   {"version 1"}});
  cases.push_back({"big endian",
                   Bytes().text("GGUF").u32(0x03000000).data,
                   ErrorCategory::kUnsupported,
                   {"big-endian"}});
  cases.push_back(
      {"version 9", Bytes().text("GGUF").u32(9).data, ErrorCategory::kFormat, {"version 9"}});
  cases.push_back(
      {"kv count", header(0, 1ull << 60).data, ErrorCategory::kFormat, {"metadata count"}});
  cases.push_back(
      {"tensor count", header(1ull << 60, 0).data, ErrorCategory::kFormat, {"tensor count"}});
  cases.push_back({"key length",
                   header(0, 1).u64(1ull << 40).text("abc").u32(0).data,
                   ErrorCategory::kFormat,
                   {"truncated", "metadata key"}});
  cases.push_back({"value type",
                   header(0, 1).gguf_string("k").u32(77).u8(0).data,
                   ErrorCategory::kFormat,
                   {"'k'", "value type 77"}});
  cases.push_back({"string value",
                   header(0, 1).gguf_string("k").u32(STR).u64(99).text("x").data,
                   ErrorCategory::kFormat,
                   {"'k'", "truncated"}});
  cases.push_back({"array count",
                   header(0, 1).gguf_string("k").u32(ARR).u32(U32).u64(1ull << 62).data,
                   ErrorCategory::kFormat,
                   {"'k'", "does not fit"}});
  cases.push_back({"string array count",
                   header(0, 1).gguf_string("k").u32(ARR).u32(STR).u64(1ull << 62).data,
                   ErrorCategory::kFormat,
                   {"'k'", "strings"}});
  cases.push_back({"nested array",
                   header(0, 1).gguf_string("k").u32(ARR).u32(ARR).u64(1).u32(U8).u64(0).data,
                   ErrorCategory::kFormat,
                   {"'k'", "nested"}});
  cases.push_back({"duplicate key",
                   header(0, 2).gguf_string("k").u32(U8).u8(1).gguf_string("k").u32(U8).u8(2).data,
                   ErrorCategory::kFormat,
                   {"'k'", "duplicate"}});
  cases.push_back({"alignment type",
                   header(0, 1).gguf_string("general.alignment").u32(U64).u64(32).data,
                   ErrorCategory::kFormat,
                   {"general.alignment", "u64"}});
  cases.push_back({"alignment value",
                   header(0, 1).gguf_string("general.alignment").u32(U32).u32(48).data,
                   ErrorCategory::kFormat,
                   {"general.alignment", "power of two"}});
  cases.push_back({"dims",
                   header(1, 0).gguf_string("t").u32(5).u64(0).u64(0).u64(0).data,
                   ErrorCategory::kFormat,
                   {"'t'", "5 dimensions"}});
  cases.push_back({"ggml type",
                   header(1, 0).gguf_string("t").u32(1).u64(4).u32(4).u64(0).data,
                   ErrorCategory::kFormat,
                   {"'t'", "GGML type 4"}});
  cases.push_back({"block multiple",
                   header(1, 0).gguf_string("t").u32(1).u64(33).u32(kTypeQ8_0).u64(0).data,
                   ErrorCategory::kFormat,
                   {"'t'", "33", "Q8_0"}});
  cases.push_back(
      {"misaligned",
       header(1, 0).gguf_string("t").u32(1).u64(1).u32(kTypeF32).u64(4).pad_to(32).u32(0).data,
       ErrorCategory::kFormat,
       {"'t'", "alignment"}});
  cases.push_back(
      {"past end",
       header(1, 0).gguf_string("t").u32(1).u64(64).u32(kTypeF32).u64(0).pad_to(32).u64(0).data,
       ErrorCategory::kFormat,
       {"'t'", "runs past", "truncated"}});
  cases.push_back({"element overflow",
                   header(1, 0)
                       .gguf_string("t")
                       .u32(2)
                       .u64(1ull << 40)
                       .u64(1ull << 40)
                       .u32(kTypeF32)
                       .u64(0)
                       .data,
                   ErrorCategory::kFormat,
                   {"'t'", "overflow"}});
  {
    Bytes b = header(2, 0);
    b.gguf_string("t").u32(1).u64(8).u32(kTypeF32).u64(0);
    b.gguf_string("u").u32(1).u64(8).u32(kTypeF32).u64(0);
    b.pad_to(32);
    b.data.resize(b.data.size() + 32);
    cases.push_back({"overlap", b.data, ErrorCategory::kFormat, {"'t'", "'u'", "overlap"}});
  }
  {
    Bytes b = header(2, 0);
    b.gguf_string("t").u32(1).u64(8).u32(kTypeF32).u64(0);
    b.gguf_string("t").u32(1).u64(8).u32(kTypeF32).u64(32);
    b.pad_to(32);
    b.data.resize(b.data.size() + 64);
    cases.push_back({"duplicate tensor", b.data, ErrorCategory::kFormat, {"'t'", "duplicate"}});
  }
  for (const Case& c : cases) {
    SCOPED_TRACE(c.label);
    try {
      parse_bytes(c.bytes, "corrupt.gguf");
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), c.category) << e.what();
      EXPECT_NE(e.message().find("corrupt.gguf"), std::string::npos) << e.message();
      for (const char* part : c.parts) {
        EXPECT_NE(e.message().find(part), std::string::npos) << part << " in " << e.message();
      }
    }
  }
}

TEST(Gguf, GgmlTypeTable) {
  // Block geometry from the GGUF spec / ggml's block structs.
  EXPECT_EQ(ggml_type_info(8)->block_bytes, 34u);
  EXPECT_EQ(ggml_type_info(2)->block_bytes, 18u);
  EXPECT_EQ(ggml_type_info(12)->block_bytes, 144u);
  EXPECT_EQ(ggml_type_info(14)->block_bytes, 210u);
  EXPECT_EQ(ggml_type_info(14)->block_elements, 256u);
  EXPECT_EQ(ggml_type_info(4), nullptr);
  EXPECT_EQ(ggml_type_of(DType::kBF16), 30u);
  EXPECT_EQ(ggml_type_of(DType::kQ6_K), 14u);
  EXPECT_EQ(ggml_type_of(DType::kF16), 1u);
  for (DType d : {DType::kQ8_0, DType::kQ4_0, DType::kQ4_K, DType::kQ6_K}) {
    const GgmlTypeInfo* info = ggml_type_info(ggml_type_of(d));
    EXPECT_EQ(info->block_bytes, dtype_info(d).block_bytes) << info->name;
    EXPECT_EQ(static_cast<int>(info->block_elements), dtype_info(d).block_elements);
  }
}

}  // namespace
}  // namespace flagstone::engine::format
