// The coordinator under test as a child process: started with ports picked by the kernel,
// waited for through its ready file, and observed through /proc (CPU time, memory).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace spriteforge::fleet {

struct ProcessSample {
  double cpu_seconds = 0;  // user + system
  double rss_mb = 0;
  double peak_rss_mb = 0;  // high-water mark
};

class CoordinatorProcess {
 public:
  // Starts `binary` serving clients and workers on 127.0.0.1, with its database, results
  // and log in `dir`; `extra` flags are appended. Waits until it serves. `db`: its --db
  // (empty: a SQLite file in `dir`; or a postgresql:// URL).
  static absl::StatusOr<CoordinatorProcess> Start(const std::string& binary, const std::string& dir,
                                                  const std::vector<std::string>& extra, const std::string& db = "");
  CoordinatorProcess(CoordinatorProcess&& o) noexcept { *this = std::move(o); }
  CoordinatorProcess& operator=(CoordinatorProcess&& o) noexcept;
  ~CoordinatorProcess();

  absl::StatusOr<ProcessSample> Sample() const;
  // SIGTERM, then waits; returns the exit status.
  int Stop();

  pid_t pid() const { return pid_; }
  const std::string& client_address() const { return client_address_; }
  const std::string& worker_address() const { return worker_address_; }
  std::string db_path() const { return db_.empty() ? dir_ + "/coordinator.db" : db_; }
  // The database with its write-ahead log (SQLite; 0 for a server).
  uint64_t DbBytes() const;

 private:
  CoordinatorProcess() = default;
  pid_t pid_ = -1;
  std::string dir_, db_, client_address_, worker_address_;
};

}  // namespace spriteforge::fleet
