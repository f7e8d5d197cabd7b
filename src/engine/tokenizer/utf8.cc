// UTF-8 helpers of the tokenizer; NFC comes from utf8proc.
#include "utf8.h"

#include <utf8proc.h>

#include <array>
#include <cstdlib>

#include "flagstone/base/error.h"

namespace flagstone::engine::tok {

std::size_t valid_utf8_length(std::string_view text, std::size_t pos) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  std::size_t n = text.size();
  if (pos >= n) return 0;
  unsigned char c = s[pos];
  if (c < 0x80) return 1;
  std::size_t len;
  unsigned char lo = 0x80, hi = 0xBF;  // bounds of the second byte (RFC 3629 table)
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;  // no surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (pos + 1 >= n || s[pos + 1] < lo || s[pos + 1] > hi) return 0;
  for (std::size_t i = 2; i < len; ++i) {
    if (pos + i >= n || (s[pos + i] & 0xC0) != 0x80) return 0;
  }
  return len;
}

char32_t decode_utf8(std::string_view text, std::size_t pos, std::size_t* length) {
  std::size_t n = valid_utf8_length(text, pos);
  const auto* s = reinterpret_cast<const unsigned char*>(text.data()) + pos;
  if (n == 0) {
    *length = 1;
    return 0xFFFD;
  }
  *length = n;
  switch (n) {
    case 1:
      return s[0];
    case 2:
      return ((s[0] & 0x1Fu) << 6) | (s[1] & 0x3Fu);
    case 3:
      return ((s[0] & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
    default:
      return ((s[0] & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) |
             (s[3] & 0x3Fu);
  }
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool is_valid_utf8(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    std::size_t n = valid_utf8_length(text, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

namespace {
// Length of the longest prefix of a valid sequence at `pos` (the "maximal subpart" that
// from_utf8_lossy replaces by one U+FFFD), at least 1.
std::size_t invalid_prefix_length(std::string_view text, std::size_t pos) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  unsigned char c = s[pos];
  std::size_t len;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 1;
  }
  std::size_t i = 1;
  if (pos + i < text.size() && s[pos + i] >= lo && s[pos + i] <= hi) {
    ++i;
    while (i < len && pos + i < text.size() && (s[pos + i] & 0xC0) == 0x80) ++i;
  }
  return i;
}
}  // namespace

std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (std::size_t i = 0; i < bytes.size();) {
    std::size_t n = valid_utf8_length(bytes, i);
    if (n > 0) {
      out.append(bytes.substr(i, n));
      i += n;
    } else {
      out.append("\xEF\xBF\xBD");
      i += invalid_prefix_length(bytes, i);
    }
  }
  return out;
}

std::size_t incomplete_utf8_tail(std::string_view text) {
  // A valid prefix of a sequence is at most 3 bytes long; look back that far for its lead byte.
  for (std::size_t back = 1; back <= 3 && back <= text.size(); ++back) {
    std::size_t pos = text.size() - back;
    auto c = static_cast<unsigned char>(text[pos]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    if (c < 0x80) return 0;
    std::size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
    if (need > back && invalid_prefix_length(text, pos) == back) return back;
    return 0;
  }
  return 0;
}

namespace {
struct ByteLevelTables {
  std::array<std::string, 256> to_unicode;
  std::array<int, 324> to_byte{};  // the alphabet's code points all lie below 324
  ByteLevelTables() {
    to_byte.fill(-1);
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      // Printable Latin-1 bytes keep their code point; the others are moved to 256 + n.
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      char32_t cp = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + extra++);
      append_utf8(to_unicode[b], cp);
      to_byte[cp] = b;
    }
  }
};
const ByteLevelTables& tables() {
  static const ByteLevelTables t;
  return t;
}
}  // namespace

const std::string& byte_to_unicode(std::uint8_t byte) {
  return tables().to_unicode[byte];
}

int unicode_to_byte(char32_t cp) {
  return cp < 324 ? tables().to_byte[cp] : -1;
}

std::string byte_level_encode(std::string_view text) {
  std::string out;
  out.reserve(text.size() * 2);
  for (char c : text) out += byte_to_unicode(static_cast<std::uint8_t>(c));
  return out;
}

std::string nfc(std::string_view text) {
  // Pure ASCII is already NFC; this is by far the common case.
  bool ascii = true;
  for (char c : text) {
    if (static_cast<unsigned char>(c) >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii || !is_valid_utf8(text)) return std::string(text);
  utf8proc_uint8_t* result = nullptr;
  utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                   static_cast<utf8proc_ssize_t>(text.size()), &result,
                   static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  FS_CHECK(n >= 0, kInvalidArgument, "NFC normalization failed: ", utf8proc_errmsg(n));
  std::string out(reinterpret_cast<char*>(result), static_cast<std::size_t>(n));
  std::free(result);
  return out;
}

bool is_unicode_whitespace(char32_t cp) {
  // Rust's char::is_whitespace (White_Space property), used by lstrip/rstrip of added tokens.
  switch (cp) {
    case 0x09:
    case 0x0A:
    case 0x0B:
    case 0x0C:
    case 0x0D:
    case 0x20:
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

}  // namespace flagstone::engine::tok
