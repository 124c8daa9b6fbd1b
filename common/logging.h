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

// A fatal signal (SIGSEGV, SIGABRT, SIGBUS, ...) writes its name and a symbolized stack
// trace to stderr before the process dies, so a crashed process leaves its reason in the log.
// `argv0` locates the binary's symbols. Call once, first thing in main.
void InstallCrashReporting(const char* argv0);

// One JSON object per line: {"time": "...Z", "level": "info", "msg": "..."}.
std::unique_ptr<spdlog::formatter> JsonLogFormatter();

}  // namespace spriteforge
