// Log settings shared by the long-running processes (coordinator, worker): a level and a
// format, "text" for people or "json" (one object per line) for log collectors.
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "spdlog/formatter.h"

namespace spriteforge {

struct LogOptions {
  std::string level = "info";  // trace | debug | info | warn | error | critical | off
  std::string format = "text";  // text | json
};

// Applies the options to the default logger; a bad level or format is an error naming it.
absl::Status ConfigureLogging(const LogOptions& options);

// One JSON object per line: {"time": "...Z", "level": "info", "msg": "..."}.
std::unique_ptr<spdlog::formatter> JsonLogFormatter();

}  // namespace spriteforge
