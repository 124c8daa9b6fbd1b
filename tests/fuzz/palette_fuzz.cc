// Fuzz target: the .hex and GIMP .gpl palette readers on arbitrary text.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/sprite/palette.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (auto format : {spriteforge::postprocess::PaletteFormat::kHex, spriteforge::postprocess::PaletteFormat::kGpl}) {
    auto p = spriteforge::postprocess::ParsePaletteText(text, format);
    if (p.ok() && (p->colors.empty() || p->colors.size() > 256)) std::abort();
  }
  return 0;
}
