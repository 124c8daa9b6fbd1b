// The worker's copies of files uploaded with jobs (LoRAs, img2img start images), kept in a
// folder by content hash: a file is fetched from the coordinator the first time a batch
// needs it, checked against its hash, and reused from then on (across reconnects too).
// The folder is bounded: beyond its size, the least recently used files go first, never
// one the current batch uses. A fetch killed half-way leaves "<sha256>.part-<pid>"; those
// of processes no longer running are removed when a cache opens.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace spriteforge::worker {

// A file of the cache as eviction sees it: `used_ms` is its last use (its modification time).
struct CachedFile {
  std::string sha256;
  uint64_t size = 0;
  int64_t used_ms = 0;
};

// Files a use within `recent_ms` keeps: another worker sharing the folder may be loading them.
constexpr int64_t kRecentUseMs = 60000;

// The files to delete so that the cache holds at most `max_bytes`: least recently used
// first, never one in `in_use` (the current batch's) or used within `recent_ms` of `now_ms`.
std::vector<std::string> FilesToEvict(std::vector<CachedFile> files, uint64_t max_bytes,
                                      const std::set<std::string>& in_use, int64_t now_ms, int64_t recent_ms);

// Whether `name` is the partial file of a fetch whose process is gone: "<sha256>.part-<pid>"
// with `running(pid)` false.
bool IsAbandonedPart(const std::string& name, const std::function<bool(long pid)>& running);

class BlobCache {
 public:
  // Writes the blob's bytes to `dest` (a temporary file of the cache folder).
  using Fetch = std::function<absl::Status(const std::string& sha256, const std::string& dest)>;

  // Removes abandoned partial files and evicts beyond `max_bytes` (0: no bound).
  BlobCache(std::string dir, Fetch fetch, uint64_t max_bytes = 0);

  // The local path of the blob, fetched first when the cache lacks it. The file counts as
  // in use by the current batch until the next BeginBatch. A use is remembered here, not
  // written to the file: the engine reloads a LoRA or ControlNet whose modification time
  // changed, so touching it would reload it for every batch.
  absl::StatusOr<std::string> Path(const std::string& sha256);
  // A new batch starts: the files of the previous one may be evicted from now on.
  void BeginBatch();

  int fetches() const { return fetches_; }  // files fetched by this cache

 private:
  void EvictBeyondBound();  // under mu_

  std::string dir_;
  Fetch fetch_;
  uint64_t max_bytes_;
  std::mutex mu_;  // one fetch at a time: a second batch waits for the file the first brings
  std::set<std::string> in_use_;
  std::map<std::string, int64_t> last_use_ms_;  // uses since this cache opened (wall clock)
  int fetches_ = 0;
};

}  // namespace spriteforge::worker
