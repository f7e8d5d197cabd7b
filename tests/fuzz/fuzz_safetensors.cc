// libFuzzer entry point for the safetensors parser: any input must parse or throw
// flagstone::Error; everything else (crash, leak, UB, other exception) is a finding.
#include "fuzz/exercise.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    flagstone::fuzz::exercise_safetensors(data, size);
  } catch (const flagstone::Error&) {
  }
  return 0;
}
