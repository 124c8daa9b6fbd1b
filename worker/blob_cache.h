// The worker's copies of files uploaded with jobs (LoRAs, img2img start images), kept in a
// folder by content hash: a file is fetched from the coordinator the first time a batch
// needs it, checked against its hash, and reused from then on (across reconnects too).
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace spriteforge::worker {

class BlobCache {
 public:
  // Writes the blob's bytes to `dest` (a temporary file of the cache folder).
  using Fetch = std::function<absl::Status(const std::string& sha256, const std::string& dest)>;

  BlobCache(std::string dir, Fetch fetch) : dir_(std::move(dir)), fetch_(std::move(fetch)) {}

  // The local path of the blob, fetched first when the cache lacks it.
  absl::StatusOr<std::string> Path(const std::string& sha256);

  int fetches() const { return fetches_; }  // files fetched by this cache

 private:
  std::string dir_;
  Fetch fetch_;
  std::mutex mu_;  // one fetch at a time: a second batch waits for the file the first brings
  int fetches_ = 0;
};

}  // namespace spriteforge::worker
