// UTF-8 helpers shared by the tokenizer pieces: code point iteration, the GPT-2 byte-to-unicode
// map of byte-level BPE, lossy repair as Rust's from_utf8_lossy does, and NFC.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace flagstone::engine::tok {

// Length in bytes of the UTF-8 sequence that starts at `text[pos]` if it is valid there, else 0.
std::size_t valid_utf8_length(std::string_view text, std::size_t pos);

// Length of the code point at `pos`, treating an invalid byte as a one-byte unit, so that
// iteration always advances.
inline std::size_t utf8_unit_length(std::string_view text, std::size_t pos) {
  std::size_t n = valid_utf8_length(text, pos);
  return n == 0 ? 1 : n;
}

// Decodes the code point at `pos` (U+FFFD for an invalid byte) and its length.
char32_t decode_utf8(std::string_view text, std::size_t pos, std::size_t* length);
void append_utf8(std::string& out, char32_t cp);

bool is_valid_utf8(std::string_view text);
// Replaces each maximal invalid subsequence by U+FFFD, as Rust's String::from_utf8_lossy, which
// is what HF tokenizers does at the end of byte-level and byte-fallback decoding.
std::string utf8_lossy(std::string_view bytes);
// How many bytes at the end of `text` are an incomplete (but so far valid) UTF-8 sequence.
std::size_t incomplete_utf8_tail(std::string_view text);

// The GPT-2 byte-level alphabet: every byte maps to one printable code point, as UTF-8.
const std::string& byte_to_unicode(std::uint8_t byte);
// Inverse: -1 when the code point is not in the alphabet.
int unicode_to_byte(char32_t cp);
// Maps every byte of `text` through byte_to_unicode.
std::string byte_level_encode(std::string_view text);

// Unicode canonical composition (NFC), needed by Qwen2's normalizer. Invalid UTF-8 is kept as is.
std::string nfc(std::string_view text);

bool is_unicode_whitespace(char32_t cp);

}  // namespace flagstone::engine::tok
