// libFuzzer entry point for chat templates (the Jinja subset): any input must parse and render
// or throw flagstone::Error; everything else is a finding.
#include "fuzz/exercise.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    flagstone::fuzz::exercise_chat_template(data, size);
  } catch (const flagstone::Error&) {
  }
  return 0;
}
