// libFuzzer entry point for the GGUF parser (metadata, tensor infos, data, model config): any
// input must parse or throw flagstone::Error; everything else is a finding.
#include "fuzz/exercise.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    flagstone::fuzz::exercise_gguf(data, size);
  } catch (const flagstone::Error&) {
  }
  return 0;
}
