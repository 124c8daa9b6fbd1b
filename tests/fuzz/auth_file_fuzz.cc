// Fuzz target: the coordinator's --auth token file. One that parses must have tokens that
// authenticate to principals with names.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "coordinator/transport/access/auth.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto table = spriteforge::coordinator::TokenTable::Parse(text, "auth.yaml");
  if (!table.ok()) return 0;
  if (table->size() == 0) std::abort();
  if (table->Authenticate("Bearer " + text).ok() && text.size() < 16) std::abort();
  return 0;
}
