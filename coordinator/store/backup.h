// The database file outside the coordinator's own connection: a consistent copy of a live
// database (SQLite's online backup API, so the coordinator keeps writing meanwhile), and the
// start-up check that refuses a file that is not a sound SQLite database without touching it.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace spriteforge::coordinator {

struct BackupReport {
  int pages = 0;
  int64_t bytes = 0;
};

// Copies `db_path` to `out_path` (written beside it, checked with PRAGMA integrity_check,
// then renamed into place).
absl::StatusOr<BackupReport> BackupDatabase(const std::string& db_path, const std::string& out_path);

// OK for a missing or empty file (a new store) and a sound database; DataLoss naming the
// file and what to do otherwise. Never writes to the file.
absl::Status CheckDatabaseFile(const std::string& path);

}  // namespace spriteforge::coordinator
