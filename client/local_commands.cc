#include "local_commands.h"

#include <cstdio>

namespace spriteforge::client {

int Pixelate(const std::vector<std::string>&) {
  std::fprintf(stderr, "spriteforge pixelate: not available in this build\n");
  return 1;
}

int Sheet(const std::vector<std::string>&) {
  std::fprintf(stderr, "spriteforge sheet: not available in this build\n");
  return 1;
}

}  // namespace spriteforge::client
