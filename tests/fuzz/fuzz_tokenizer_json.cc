// libFuzzer entry point for tokenizer.json: any input must build a tokenizer that then encodes
// and decodes, or throw flagstone::Error; everything else is a finding.
#include "fuzz/exercise.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    flagstone::fuzz::exercise_tokenizer_json(data, size);
  } catch (const flagstone::Error&) {
  }
  return 0;
}
