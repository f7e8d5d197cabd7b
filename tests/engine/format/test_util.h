// Helpers for the format tests: a scratch folder per test, little-endian byte building for
// hand-made files, and an expectation that a call throws flagstone::Error of a category.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "flagstone/base/error.h"

namespace flagstone::engine::format::testing {

// A fresh, empty folder under the system temp dir, removed when the object goes away.
class ScratchDir {
 public:
  ScratchDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string("flagstone_format_") + info->test_suite_name() + "_" +
                       info->name() + "_" + std::to_string(::getpid());
    path_ = std::filesystem::temp_directory_path() / name;
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Appends little-endian fields to a byte vector: written independently of the library's writers
// so that reader tests do not trust the code under test.
class Bytes {
 public:
  template <typename T>
  Bytes& put(T value) {
    unsigned char raw[sizeof(T)];
    std::memcpy(raw, &value, sizeof(T));
    for (size_t i = 0; i < sizeof(T); ++i) data.push_back(static_cast<std::byte>(raw[i]));
    return *this;
  }
  Bytes& u8(uint8_t v) { return put(v); }
  Bytes& u32(uint32_t v) { return put(v); }
  Bytes& u64(uint64_t v) { return put(v); }
  Bytes& text(const std::string& s) {
    for (char c : s) data.push_back(static_cast<std::byte>(c));
    return *this;
  }
  Bytes& gguf_string(const std::string& s) { return u64(s.size()).text(s); }
  Bytes& pad_to(size_t alignment) {
    while (data.size() % alignment != 0) data.push_back(std::byte{0});
    return *this;
  }
  Bytes& raw(const void* p, size_t n) {
    const auto* b = static_cast<const std::byte*>(p);
    data.insert(data.end(), b, b + n);
    return *this;
  }
  std::vector<std::byte> data;
};

inline void write_file(const std::string& path, const std::vector<std::byte>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

}  // namespace flagstone::engine::format::testing

// Expects `statement` to throw flagstone::Error of `expected_category` whose message contains every
// one of the given substrings.
#define EXPECT_FS_ERROR(statement, expected_category, ...)                                \
  do {                                                                                    \
    try {                                                                                 \
      statement;                                                                          \
      ADD_FAILURE() << "expected flagstone::Error from " #statement;                      \
    } catch (const ::flagstone::Error& e) {                                               \
      EXPECT_EQ(e.category(), ::flagstone::ErrorCategory::expected_category) << e.what(); \
      for (const char* part : {__VA_ARGS__}) {                                            \
        EXPECT_NE(e.message().find(part), std::string::npos)                              \
            << "message lacks \"" << part << "\": " << e.message();                       \
      }                                                                                   \
    }                                                                                     \
  } while (0)
