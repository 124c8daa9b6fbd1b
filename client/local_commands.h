// Client commands on local files, no coordinator: sprite post-processing.
#pragma once

#include <string>
#include <vector>

namespace spriteforge::client {

int Pixelate(const std::vector<std::string>& args);
int Sheet(const std::vector<std::string>& args);

}  // namespace spriteforge::client
