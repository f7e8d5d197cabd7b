// PCRE2 wrapper of the tokenizer. Matching uses per-call match data so that one compiled
// pattern serves many threads.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "regex.h"

#include <pcre2.h>

#include "flagstone/base/error.h"

namespace flagstone::engine::tok {

struct Regex::Code {
  pcre2_code* code = nullptr;
  ~Code() { pcre2_code_free(code); }
};

Regex::Regex(std::string_view pattern, std::string_view what)
    : code_(std::make_unique<Code>()), pattern_(pattern) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  code_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                              PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  if (code_->code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    throw_error(ErrorCategory::kFormat, what, ": cannot compile regex \"", pattern, "\" at offset ",
                offset, ": ", reinterpret_cast<const char*>(message));
  }
  // JIT makes the split patterns several times faster; fall back silently where unavailable.
  pcre2_jit_compile(code_->code, PCRE2_JIT_COMPLETE);
}

Regex::~Regex() = default;

std::vector<std::pair<std::size_t, std::size_t>> Regex::find_all(std::string_view text) const {
  std::vector<std::pair<std::size_t, std::size_t>> out;
  pcre2_match_data* data = pcre2_match_data_create_from_pattern(code_->code, nullptr);
  FS_CHECK(data != nullptr, kOutOfMemory, "regex match data for \"", pattern_, "\"");
  std::size_t start = 0;
  // The text was validated as UTF-8 by the caller's pipeline; skipping the check saves a pass.
  uint32_t options = 0;
  while (start <= text.size()) {
    int rc = pcre2_match(code_->code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), start,
                         options, data, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      pcre2_match_data_free(data);
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof(message));
      throw_error(ErrorCategory::kInvalidArgument, "regex \"", pattern_,
                  "\" failed on input: ", reinterpret_cast<const char*>(message));
    }
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(data);
    std::size_t b = ov[0], e = ov[1];
    if (e > b) {
      out.emplace_back(b, e);
      start = e;
    } else {
      // Empty match: step over one code point so that the scan makes progress.
      if (b >= text.size()) break;
      std::size_t n = 1;
      while (b + n < text.size() && (static_cast<unsigned char>(text[b + n]) & 0xC0) == 0x80) ++n;
      start = b + n;
    }
    options = PCRE2_NO_UTF_CHECK;
  }
  pcre2_match_data_free(data);
  return out;
}

}  // namespace flagstone::engine::tok
