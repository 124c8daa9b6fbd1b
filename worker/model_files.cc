#include "worker/model_files.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/sha256.h"
#include "spdlog/spdlog.h"

namespace spriteforge::worker {
namespace {

namespace fs = std::filesystem;

// The weights file a diffusers folder's model (or a checkpoint's unet/) loads from, in the
// order the engine looks (DiffusersComponentFile).
constexpr const char* kFolderWeights[] = {"diffusion_pytorch_model.safetensors", "model.safetensors",
                                          "diffusion_pytorch_model.fp16.safetensors", "model.fp16.safetensors"};

void SetHash(v1::LoraFile* f, const fs::path& path, FileHashes* hashes) {
  if (hashes == nullptr) return;
  auto sha = hashes->Of(path.string());
  if (sha.ok()) {
    f->set_sha256(*sha);
  } else {
    spdlog::warn("cannot hash {}: {}", path.string(), std::string(sha.status().message()));
  }
}

}  // namespace

std::string FileHashesPath(const std::string& cache_dir) {
  return cache_dir.empty() ? "" : (fs::path(cache_dir) / "file-hashes.tsv").string();
}

// One line per file: sha256, size, modification time (file clock ticks), path; tab-separated.
FileHashes::FileHashes(std::string cache_file) : cache_file_(std::move(cache_file)) {
  if (cache_file_.empty()) return;
  std::ifstream in(cache_file_);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> fields = absl::StrSplit(line, absl::MaxSplits('\t', 3));
    Known k;
    int64_t mtime = 0;
    if (fields.size() != 4 || !IsSha256Hex(fields[0]) || !absl::SimpleAtoi(fields[1], &k.size) ||
        !absl::SimpleAtoi(fields[2], &mtime) || fields[3].empty()) {
      continue;  // damaged: that file is hashed again
    }
    k.mtime = mtime;
    k.sha256 = fields[0];
    known_[fields[3]] = std::move(k);
  }
}

absl::StatusOr<std::string> FileHashes::Of(const std::string& file) {
  std::error_code ec;
  // Remembered by absolute path: a worker started from another folder finds its files.
  const std::string path = fs::absolute(file, ec).lexically_normal().string();
  if (ec) return absl::NotFoundError(absl::StrCat("cannot read ", file, ": ", ec.message()));
  const uint64_t size = fs::file_size(path, ec);
  if (ec) return absl::NotFoundError(absl::StrCat("cannot read ", path, ": ", ec.message()));
  const int64_t mtime = static_cast<int64_t>(fs::last_write_time(path, ec).time_since_epoch().count());
  if (ec) return absl::NotFoundError(absl::StrCat("cannot read ", path, ": ", ec.message()));
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = known_.find(path);
    if (it != known_.end() && it->second.size == size && it->second.mtime == mtime) return it->second.sha256;
  }
  if (stop_) return absl::UnavailableError(absl::StrCat(path, " is not hashed yet"));
  // Read outside the lock: another thread may list other files meanwhile.
  auto sha = Sha256OfFile(path);
  if (!sha.ok()) return sha.status();
  std::lock_guard<std::mutex> lock(mu_);
  ++hashed_;
  // A path with a tab or line break cannot be a line of the cache file: hashed every time.
  if (path.find_first_of("\t\n\r") == std::string::npos) {
    known_[path] = Known{size, mtime, *sha};
    changed_ = true;
  }
  return sha;
}

absl::Status FileHashes::Save() {
  std::lock_guard<std::mutex> lock(mu_);
  if (cache_file_.empty() || !changed_) return absl::OkStatus();
  std::error_code ec;
  for (auto it = known_.begin(); it != known_.end();) {
    it = fs::exists(it->first, ec) ? std::next(it) : known_.erase(it);
  }
  std::ostringstream text;
  for (const auto& [path, k] : known_) text << k.sha256 << '\t' << k.size << '\t' << k.mtime << '\t' << path << '\n';
  // Written beside, then renamed: a worker sharing the folder reads the old file or the new.
  const std::string temp = absl::StrCat(cache_file_, ".tmp-", getpid());
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out << text.str();
    out.close();
    if (!out) {
      fs::remove(temp, ec);
      return absl::ResourceExhaustedError(absl::StrCat("cannot write ", temp));
    }
  }
  fs::rename(temp, cache_file_, ec);
  if (ec) {
    fs::remove(temp, ec);
    return absl::InternalError(absl::StrCat("cannot replace ", cache_file_, ": ", ec.message()));
  }
  changed_ = false;
  return absl::OkStatus();
}

int FileHashes::hashed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return hashed_;
}

std::vector<v1::LoraFile> ListLoraFolder(const std::string& dir, FileHashes* hashes) {
  std::vector<v1::LoraFile> out;
  if (dir.empty()) return out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (!e.is_regular_file(ec) || e.path().extension() != ".safetensors") continue;
    v1::LoraFile f;
    f.set_name(e.path().stem().string());
    f.set_size_bytes(e.file_size(ec));
    SetHash(&f, e.path(), hashes);
    out.push_back(std::move(f));
  }
  return out;
}

std::vector<v1::LoraFile> ListModelFolders(const std::string& dir, FileHashes* hashes) {
  std::vector<v1::LoraFile> out;
  if (dir.empty()) return out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (!e.is_directory(ec) || !fs::is_regular_file(e.path() / "config.json", ec)) continue;
    v1::LoraFile f;
    f.set_name(e.path().filename().string());
    uint64_t bytes = 0;
    for (const auto& inner : fs::directory_iterator(e.path(), ec)) {
      if (inner.path().extension() == ".safetensors") bytes += inner.file_size(ec);
    }
    f.set_size_bytes(bytes);
    for (const char* weights : kFolderWeights) {
      if (fs::is_regular_file(e.path() / weights, ec)) {
        SetHash(&f, e.path() / weights, hashes);
        break;
      }
    }
    out.push_back(std::move(f));
  }
  return out;
}

v1::LoraFile ModelFile(const std::string& name, const std::string& model_path, FileHashes* hashes) {
  v1::LoraFile f;
  f.set_name(name);
  if (model_path.empty() || model_path.rfind("builtin:", 0) == 0) return f;
  std::error_code ec;
  const fs::path path(model_path);
  if (fs::is_regular_file(path, ec)) {
    f.set_size_bytes(fs::file_size(path, ec));
    SetHash(&f, path, hashes);
    return f;
  }
  if (!fs::is_directory(path, ec)) return f;
  uint64_t bytes = 0;
  for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    std::error_code file_ec;  // an unreadable file counts nothing and ends no walk
    if (it->path().extension() == ".safetensors" && it->is_regular_file(file_ec)) {
      const uint64_t size = it->file_size(file_ec);
      if (!file_ec) bytes += size;
    }
  }
  f.set_size_bytes(bytes);
  for (const char* weights : kFolderWeights) {
    if (fs::is_regular_file(path / "unet" / weights, ec)) {
      SetHash(&f, path / "unet" / weights, hashes);
      break;
    }
  }
  return f;
}

void HashModelFolders(const std::vector<std::string>& dirs, FileHashes* hashes, const std::string& model_path) {
  ModelFile("", model_path, hashes);
  for (const std::string& dir : dirs) {
    ListLoraFolder(dir, hashes);
    ListModelFolders(dir, hashes);
  }
  if (auto s = hashes->Save(); !s.ok()) spdlog::warn("file hashes not remembered: {}", std::string(s.message()));
}

}  // namespace spriteforge::worker
