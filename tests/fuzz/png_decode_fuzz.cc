// Fuzz target: PNG decoding (libpng behind DecodePng) must reject or decode any bytes
// without crashing, and a decoded image must have consistent dimensions.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/png.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  spriteforge::PngText text;
  auto image = spriteforge::DecodePng(std::string(reinterpret_cast<const char*>(data), size), &text);
  if (image.ok() && image->pixels.size() != size_t(image->width) * image->height * image->channels) std::abort();
  return 0;
}
