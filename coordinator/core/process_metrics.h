// This process's CPU time, memory, start time and file descriptors, read from /proc: the
// standard process_* metrics, which prometheus-cpp does not collect itself.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"

namespace spriteforge::coordinator {

struct ProcessStats {
  double cpu_seconds = 0;         // user + system
  uint64_t resident_bytes = 0;
  uint64_t virtual_bytes = 0;
  double start_time_seconds = 0;  // Unix time
  int64_t open_fds = 0;
  int64_t max_fds = 0;            // the soft limit
};

absl::StatusOr<ProcessStats> ReadProcessStats();

}  // namespace spriteforge::coordinator
