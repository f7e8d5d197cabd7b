// flagstone::Error carries its category and a message that names the culprit.
#include <gtest/gtest.h>

#include "flagstone/base/error.h"

namespace flagstone {
namespace {

TEST(Error, CarriesCategoryAndMessage) {
  try {
    throw_error(ErrorCategory::kFormat, "file ", "model.gguf", ": tensor ", 3, " truncated");
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kFormat);
    EXPECT_EQ(e.message(), "file model.gguf: tensor 3 truncated");
    EXPECT_EQ(std::string(e.what()), "format error: file model.gguf: tensor 3 truncated");
    return;
  }
  FAIL() << "nothing thrown";
}

TEST(Error, CheckMacrosThrowOnlyOnFailure) {
  EXPECT_NO_THROW(FS_CHECK(1 + 1 == 2, kInvalidArgument, "never"));
  EXPECT_THROW(FS_CHECK(false, kInvalidArgument, "shape ", 3), Error);
  try {
    FS_ASSERT(2 < 1);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInternal);
    EXPECT_NE(e.message().find("2 < 1"), std::string::npos);
  }
}

}  // namespace
}  // namespace flagstone
