// libFuzzer target: the safetensors header parser must return an error, never crash or
// read out of bounds, whatever the bytes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "worker/engine/base/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto views = spriteforge::engine::ParseSafetensorsHeader(
      std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.safetensors");
  if (views.ok()) {
    // Every accepted view must lie inside the input.
    for (const auto& v : *views) {
      const char* begin = static_cast<const char*>(v.data);
      if (begin < reinterpret_cast<const char*>(data) || begin + v.nbytes > reinterpret_cast<const char*>(data) + size) {
        __builtin_trap();
      }
    }
  }
  return 0;
}
