// The compile cache's storage: content hashes and a disk folder shared safely between
// processes (files appear complete or not at all, through write-to-temp then rename).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace flagstone::compiler {

// 128-bit hash of `data` as 32 hex digits (two independent 64-bit FNV-1a lanes).
std::string hash_hex(std::string_view data);

// Reads a whole file; nullopt when it does not exist or cannot be read.
std::optional<std::vector<uint8_t>> read_file_bytes(const std::string& path);
// Writes `bytes` to `path` atomically: a temporary file in the same folder, then rename().
// Creates the folder. Throws Error(kIo) naming the path on failure.
void write_file_atomic(const std::string& path, const std::vector<uint8_t>& bytes);

// Counts a toolchain run (for compiler_invocations()).
void note_compiler_invocation();

}  // namespace flagstone::compiler
