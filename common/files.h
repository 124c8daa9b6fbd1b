// Small file helpers shared by every process.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace spriteforge {

absl::StatusOr<std::string> ReadFile(const std::string& path);

// Writes `data` to `path` atomically (temporary file in the same folder, fsync, rename),
// so a reader sees the old file or the whole new one, never a torn one. Errors such as a
// full disk name the path and leave any old file untouched.
absl::Status WriteFileAtomic(const std::string& path, const std::string& data);

}  // namespace spriteforge
