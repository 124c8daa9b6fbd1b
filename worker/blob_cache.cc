#include "worker/blob_cache.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "spdlog/spdlog.h"

namespace spriteforge::worker {

namespace fs = std::filesystem;

namespace {

constexpr char kPart[] = ".part-";

int64_t WallNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Whether another process with this id runs (ours is not "another": it fetches nothing yet).
bool RunsElsewhere(long pid) {
  if (pid <= 0 || pid == getpid()) return false;
  return kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

}  // namespace

std::vector<std::string> FilesToEvict(std::vector<CachedFile> files, uint64_t max_bytes,
                                      const std::set<std::string>& in_use, int64_t now_ms, int64_t recent_ms) {
  uint64_t total = 0;
  for (const CachedFile& f : files) total += f.size;
  std::sort(files.begin(), files.end(), [](const CachedFile& a, const CachedFile& b) { return a.used_ms < b.used_ms; });
  std::vector<std::string> evicted;
  for (const CachedFile& f : files) {
    if (total <= max_bytes) break;
    if (in_use.count(f.sha256) || now_ms - f.used_ms < recent_ms) continue;
    evicted.push_back(f.sha256);
    total -= f.size;
  }
  return evicted;
}

bool IsAbandonedPart(const std::string& name, const std::function<bool(long pid)>& running) {
  const size_t at = name.rfind(kPart);
  if (at == std::string::npos || !IsSha256Hex(name.substr(0, at))) return false;
  long pid = 0;
  if (!absl::SimpleAtoi(name.substr(at + sizeof(kPart) - 1), &pid)) return false;
  return !running(pid);
}

BlobCache::BlobCache(std::string dir, Fetch fetch, uint64_t max_bytes)
    : dir_(std::move(dir)), fetch_(std::move(fetch)), max_bytes_(max_bytes) {
  std::error_code ec;
  int removed = 0;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    if (IsAbandonedPart(e.path().filename().string(), RunsElsewhere) && fs::remove(e.path(), ec)) ++removed;
  }
  if (removed > 0) spdlog::info("removed {} partial files of fetches cut short from {}", removed, dir_);
  std::lock_guard<std::mutex> lock(mu_);
  EvictBeyondBound();
}

void BlobCache::BeginBatch() {
  std::lock_guard<std::mutex> lock(mu_);
  in_use_.clear();
}

void BlobCache::EvictBeyondBound() {
  if (max_bytes_ == 0) return;
  const int64_t now = WallNowMs();
  const auto file_now = fs::file_time_type::clock::now();
  std::vector<CachedFile> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    const std::string name = e.path().filename().string();
    if (!IsSha256Hex(name) || !e.is_regular_file(ec)) continue;
    const auto age = std::chrono::duration_cast<std::chrono::milliseconds>(file_now - e.last_write_time(ec));
    int64_t last_use = now - age.count();  // written (fetched), or used before this cache opened
    if (auto it = last_use_ms_.find(name); it != last_use_ms_.end()) last_use = std::max(last_use, it->second);
    files.push_back({name, e.file_size(ec), last_use});
  }
  for (const std::string& sha : FilesToEvict(std::move(files), max_bytes_, in_use_, now, kRecentUseMs)) {
    if (fs::remove(fs::path(dir_) / sha, ec)) spdlog::info("evicted uploaded file {} from {}", sha, dir_);
    last_use_ms_.erase(sha);
  }
}

absl::StatusOr<std::string> BlobCache::Path(const std::string& sha256) {
  if (!IsSha256Hex(sha256)) return absl::InvalidArgumentError(absl::StrCat("'", sha256, "' is not a sha256"));
  const fs::path path = fs::path(dir_) / sha256;
  std::lock_guard<std::mutex> lock(mu_);
  in_use_.insert(sha256);
  last_use_ms_[sha256] = WallNowMs();
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return path.string();
  fs::create_directories(dir_, ec);
  if (ec) {  // the folder is named in this worker's log, not in the failure the coordinator shows
    spdlog::error("cannot create cache folder {}: {}", dir_, ec.message());
    return absl::FailedPreconditionError(absl::StrCat("cannot create this worker's cache folder: ", ec.message()));
  }
  const std::string temp = absl::StrCat(path.string(), kPart, getpid());
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
  if (ec) {
    spdlog::error("cannot store {}: {}", path.string(), ec.message());
    return absl::ResourceExhaustedError(absl::StrCat("cannot store uploaded file ", sha256, ": ", ec.message()));
  }
  ++fetches_;
  spdlog::info("fetched uploaded file {} ({} bytes) into {}", sha256, fs::file_size(path, ec), dir_);
  EvictBeyondBound();
  return path.string();
}

}  // namespace spriteforge::worker
