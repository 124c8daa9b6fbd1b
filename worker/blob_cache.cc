#include "worker/blob_cache.h"

#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "spdlog/spdlog.h"

namespace spriteforge::worker {

namespace fs = std::filesystem;

absl::StatusOr<std::string> BlobCache::Path(const std::string& sha256) {
  if (!IsSha256Hex(sha256)) return absl::InvalidArgumentError(absl::StrCat("'", sha256, "' is not a sha256"));
  const fs::path path = fs::path(dir_) / sha256;
  std::lock_guard<std::mutex> lock(mu_);
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return path.string();
  fs::create_directories(dir_, ec);
  if (ec) return absl::FailedPreconditionError(absl::StrCat("cannot create cache folder ", dir_, ": ", ec.message()));
  const std::string temp = absl::StrCat(path.string(), ".part-", getpid());
  absl::Status fetched = fetch_(sha256, temp);
  if (fetched.ok()) {
    // The coordinator's copy is trusted only as far as its hash.
    auto actual = Sha256OfFile(temp);
    if (!actual.ok()) {
      fetched = actual.status();
    } else if (*actual != sha256) {
      fetched = absl::DataLossError(absl::StrCat("fetched file ", sha256, " has hash ", *actual));
    }
  }
  if (!fetched.ok()) {
    fs::remove(temp, ec);
    return absl::Status(fetched.code(), absl::StrCat("cannot fetch uploaded file ", sha256, ": ", fetched.message()));
  }
  fs::rename(temp, path, ec);
  if (ec) return absl::ResourceExhaustedError(absl::StrCat("cannot store ", path.string(), ": ", ec.message()));
  ++fetches_;
  spdlog::info("fetched uploaded file {} ({} bytes) into {}", sha256, fs::file_size(path, ec), dir_);
  return path.string();
}

}  // namespace spriteforge::worker
