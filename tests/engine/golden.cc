#include "golden.h"

#include <cstdlib>
#include <filesystem>

namespace spriteforge::engine::testing {

std::string GoldenDir() {
  const char* dir = std::getenv("SPRITEFORGE_GOLDEN");
  if (!dir || !*dir || !std::filesystem::exists(std::filesystem::path(dir) / "cases.json")) return "";
  return dir;
}

bool GoldenRequired() {
  const char* required = std::getenv("SPRITEFORGE_REQUIRE_GOLDEN");
  return required && std::string(required) == "1";
}

const SafetensorsFile& GoldenVectors() {
  static std::unique_ptr<SafetensorsFile> file = [] {
    auto opened = SafetensorsFile::Open(GoldenDir() + "/vectors.safetensors");
    if (!opened.ok()) {
      ADD_FAILURE() << opened.status();
      std::abort();
    }
    return std::move(*opened);
  }();
  return *file;
}

}  // namespace spriteforge::engine::testing
