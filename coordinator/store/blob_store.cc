#include "coordinator/store/blob_store.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace spriteforge::coordinator {

namespace fs = std::filesystem;

namespace {

int64_t SteadyNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// How long ago the file was last written, in ms (its clock is the file system's).
int64_t AgeMs(const fs::path& path) {
  std::error_code ec;
  const auto written = fs::last_write_time(path, ec);
  if (ec) return 0;
  return std::chrono::duration_cast<std::chrono::milliseconds>(fs::file_time_type::clock::now() - written).count();
}

}  // namespace

std::vector<std::string> BlobsToCollect(const std::vector<BlobEntry>& blobs, const std::set<std::string>& referenced,
                                        int64_t now_ms, int64_t grace_ms) {
  std::vector<std::string> doomed;
  for (const BlobEntry& blob : blobs) {
    if (referenced.count(blob.sha256) || now_ms - blob.used_ms <= grace_ms) continue;
    doomed.push_back(blob.sha256);
  }
  return doomed;
}

absl::StatusOr<std::unique_ptr<BlobStore>> BlobStore::Open(const std::string& dir, UploadLimits limits,
                                                           BlobBudget budget) {
  std::error_code ec;
  fs::create_directories(fs::path(dir) / "incoming", ec);
  if (!ec) fs::create_directories(fs::path(dir) / "owners", ec);
  if (ec) return absl::FailedPreconditionError(absl::StrCat("cannot create blob folder ", dir, ": ", ec.message()));
  // Uploads cut short by a previous process.
  for (const auto& e : fs::directory_iterator(fs::path(dir) / "incoming", ec)) fs::remove(e.path(), ec);
  std::unique_ptr<BlobStore> store(new BlobStore(dir, limits, budget));
  store->Load();
  return store;
}

std::string BlobStore::OwnersPath(const std::string& sha256) const {
  return (fs::path(dir_) / "owners" / sha256).string();
}

void BlobStore::Load() {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    const std::string sha = e.path().filename().string();
    if (!IsSha256Hex(sha) || !e.is_regular_file(ec)) continue;
    Stored& blob = stored_[sha];
    blob.size = e.file_size(ec);
    stored_bytes_ += blob.size;
    std::ifstream owners(OwnersPath(sha));
    for (std::string owner; std::getline(owners, owner);) {
      if (!owner.empty() && blob.owners.insert(owner).second) owner_bytes_[owner] += blob.size;
    }
  }
}

absl::StatusOr<std::unique_ptr<BlobStore::Upload>> BlobStore::Begin(ManifestFileKind kind, uint64_t announced,
                                                                    const std::string& owner,
                                                                    uint64_t owner_max_bytes) {
  if (announced > limits_.MaxBytes(kind)) {
    return absl::InvalidArgumentError(absl::StrCat("the ", KindName(kind), " is ", announced,
                                                   " bytes; the limit is ", limits_.MaxBytes(kind)));
  }
  static std::atomic<uint64_t> counter{0};
  const std::string temp = (fs::path(dir_) / "incoming" / absl::StrCat(getpid(), "-", counter++)).string();
  std::unique_ptr<Upload> upload;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const uint64_t used = stored_bytes_ + reserved_bytes_;
    if (budget_.max_total_bytes > 0 && used + announced > budget_.max_total_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the coordinator's upload folder holds ", used, " of its ", budget_.max_total_bytes,
          " bytes (--blob-max-gb); this ", KindName(kind), " of ", announced, " bytes does not fit"));
    }
    const uint64_t sending = owner.empty() ? 0 : owner_reserved_[owner];
    if (owner_max_bytes > 0 && sending + announced > owner_max_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat("'", owner, "' is sending ", sending,
                                                       " bytes of uploads already, its quota is ", owner_max_bytes,
                                                       " (max_upload_mb); this ", KindName(kind), " of ", announced,
                                                       " bytes does not fit"));
    }
    reserved_bytes_ += announced;
    if (!owner.empty()) owner_reserved_[owner] += announced;
    upload.reset(new Upload(this, kind, announced, owner, owner_max_bytes, temp));
    uploads_.insert(upload.get());
  }
  if (!upload->out_) return absl::ResourceExhaustedError(absl::StrCat("cannot write ", temp));
  return upload;
}

void BlobStore::Release(Upload* upload) {
  reserved_bytes_ -= upload->announced_;
  if (!upload->owner_.empty()) owner_reserved_[upload->owner_] -= upload->announced_;
}

absl::Status BlobStore::CheckQuota(const Ref& ref, const std::string& owner, uint64_t owner_max_bytes) {
  if (owner.empty() || owner_max_bytes == 0) return absl::OkStatus();
  if (auto it = stored_.find(ref.sha256); it != stored_.end() && it->second.owners.count(owner)) {
    return absl::OkStatus();  // the owner holds these bytes already
  }
  const uint64_t owned = owner_bytes_[owner];
  if (owned + ref.size <= owner_max_bytes) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat("'", owner, "' holds ", owned, " bytes of uploads, its quota is ",
                                                   owner_max_bytes, " (max_upload_mb); this file of ", ref.size,
                                                   " bytes does not fit until its finished jobs' files are collected"));
}

void BlobStore::Charge(const std::string& sha256, uint64_t size, const std::string& owner) {
  auto [it, fresh] = stored_.try_emplace(sha256);
  if (fresh) {
    it->second.size = size;
    stored_bytes_ += size;
  }
  if (owner.empty() || !it->second.owners.insert(owner).second) return;
  owner_bytes_[owner] += size;
  std::ofstream(OwnersPath(sha256), std::ios::app) << owner << "\n";
}

BlobStore::Upload::Upload(BlobStore* store, ManifestFileKind kind, uint64_t announced, std::string owner,
                          uint64_t owner_max_bytes, std::string temp_path)
    : store_(store), kind_(kind), announced_(announced), owner_(std::move(owner)), owner_max_bytes_(owner_max_bytes),
      temp_path_(std::move(temp_path)),
      out_(temp_path_, std::ios::binary | std::ios::trunc), active_ms_(SteadyNowMs()) {}

BlobStore::Upload::~Upload() {
  {
    std::lock_guard<std::mutex> lock(store_->mu_);
    store_->uploads_.erase(this);
    if (!done_ && !expired_) store_->Release(this);
  }
  if (done_) return;
  out_.close();
  std::error_code ec;
  fs::remove(temp_path_, ec);
}

void BlobStore::Upload::OnExpired(std::function<void()> cancel) {
  std::lock_guard<std::mutex> lock(store_->mu_);
  on_expired_ = std::move(cancel);
}

absl::Status BlobStore::Upload::Append(const std::string& data) {
  if (expired_) return absl::DeadlineExceededError("the upload stalled and was cancelled");
  active_ms_ = SteadyNowMs();
  if (written_ + data.size() > announced_) {
    return absl::InvalidArgumentError(absl::StrCat("the upload is longer than the announced ", announced_, " bytes"));
  }
  if (start_.size() < 9) start_.append(data, 0, std::min<size_t>(9 - start_.size(), data.size()));
  if (IsSafetensorsKind(kind_) && start_.size() >= 9) {
    if (auto problem = SafetensorsStartProblem(start_); !problem.empty()) return absl::InvalidArgumentError(problem);
  }
  out_.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!out_) return absl::ResourceExhaustedError(absl::StrCat("cannot write ", temp_path_, " (disk full?)"));
  hash_.Update(data);
  written_ += data.size();
  return absl::OkStatus();
}

absl::StatusOr<BlobStore::Ref> BlobStore::Upload::Finish() {
  if (expired_) return absl::DeadlineExceededError("the upload stalled and was cancelled");
  if (written_ != announced_) {
    return absl::InvalidArgumentError(absl::StrCat("the upload ended after ", written_, " of ", announced_, " bytes"));
  }
  if (IsSafetensorsKind(kind_)) {
    if (auto problem = SafetensorsStartProblem(start_); !problem.empty()) return absl::InvalidArgumentError(problem);
  }
  out_.flush();
  out_.close();
  if (!out_) return absl::ResourceExhaustedError(absl::StrCat("cannot write ", temp_path_, " (disk full?)"));
  Ref ref{hash_.HexDigest(), written_};
  const fs::path final_path = fs::path(store_->dir_) / ref.sha256;
  std::lock_guard<std::mutex> lock(store_->mu_);
  if (expired_) return absl::DeadlineExceededError("the upload stalled and was cancelled");
  RETURN_IF_ERROR(store_->CheckQuota(ref, owner_, owner_max_bytes_));
  std::error_code ec;
  if (fs::exists(final_path, ec)) {
    fs::remove(temp_path_, ec);  // the same bytes are already kept
    fs::last_write_time(final_path, fs::file_time_type::clock::now(), ec);  // uploaded again: its grace restarts
  } else {
    fs::rename(temp_path_, final_path, ec);
    if (ec) return absl::ResourceExhaustedError(absl::StrCat("cannot store ", final_path.string(), ": ", ec.message()));
  }
  store_->Release(this);
  store_->Charge(ref.sha256, ref.size, owner_);
  done_ = true;
  return ref;
}

absl::StatusOr<BlobStore::Ref> BlobStore::Adopt(const std::string& path) {
  ASSIGN_OR_RETURN(std::string sha256, Sha256OfFile(path));
  std::error_code ec;
  const uint64_t size = fs::file_size(path, ec);
  if (ec) return absl::NotFoundError(absl::StrCat("cannot read ", path, ": ", ec.message()));
  const fs::path final_path = fs::path(dir_) / sha256;
  static std::atomic<uint64_t> counter{0};
  const fs::path temp = fs::path(dir_) / "incoming" / absl::StrCat("adopt-", getpid(), "-", counter++);
  std::lock_guard<std::mutex> lock(mu_);
  if (fs::exists(final_path, ec)) {
    fs::last_write_time(final_path, fs::file_time_type::clock::now(), ec);
  } else {
    // A copy, not a link: touching the blob (its grace) must not touch the result.
    fs::copy_file(path, temp, fs::copy_options::overwrite_existing, ec);
    if (!ec) fs::last_write_time(temp, fs::file_time_type::clock::now(), ec);
    if (!ec) fs::rename(temp, final_path, ec);
    if (ec) {
      std::error_code ignored;
      fs::remove(temp, ignored);
      return absl::ResourceExhaustedError(absl::StrCat("cannot store ", final_path.string(), ": ", ec.message()));
    }
  }
  Charge(sha256, size, "");
  return Ref{sha256, size};
}

absl::Status BlobStore::Touch(const std::string& sha256) {
  ASSIGN_OR_RETURN(auto path, Path(sha256));
  std::lock_guard<std::mutex> lock(mu_);
  std::error_code ec;
  fs::last_write_time(path, fs::file_time_type::clock::now(), ec);
  if (ec) return absl::NotFoundError(absl::StrCat("no uploaded file ", sha256));
  return absl::OkStatus();
}

int BlobStore::Collect(const std::set<std::string>& referenced, int64_t now_ms, int64_t grace_ms) {
  // Under the lock throughout, so a Touch lands before the listing or after the deletion.
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<BlobEntry> blobs;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    const std::string sha = e.path().filename().string();
    if (IsSha256Hex(sha) && e.is_regular_file(ec)) blobs.push_back({sha, 0, now_ms - AgeMs(e.path())});
  }
  const std::vector<std::string> doomed = BlobsToCollect(blobs, referenced, now_ms, grace_ms);
  for (const std::string& sha : doomed) {
    fs::remove(fs::path(dir_) / sha, ec);
    fs::remove(OwnersPath(sha), ec);
    auto it = stored_.find(sha);
    if (it == stored_.end()) continue;
    stored_bytes_ -= it->second.size;
    for (const std::string& owner : it->second.owners) owner_bytes_[owner] -= it->second.size;
    stored_.erase(it);
  }
  return static_cast<int>(doomed.size());
}

int BlobStore::ExpireStalled(int64_t steady_now_ms, int64_t idle_ms) {
  std::vector<std::function<void()>> cancels;
  int expired = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (Upload* upload : uploads_) {
      if (upload->done_ || upload->expired_ || steady_now_ms - upload->active_ms_ <= idle_ms) continue;
      upload->expired_ = true;
      ++expired;
      Release(upload);
      std::error_code ec;
      fs::remove(upload->temp_path_, ec);  // its space returns once the writer closes it
      if (upload->on_expired_) cancels.push_back(upload->on_expired_);
    }
  }
  for (auto& cancel : cancels) cancel();  // outside the lock: a cancelled call may end its upload inline
  return expired;
}

uint64_t BlobStore::total_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stored_bytes_ + reserved_bytes_;
}

uint64_t BlobStore::owner_bytes(const std::string& owner) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = owner_bytes_.find(owner);
  return it == owner_bytes_.end() ? 0 : it->second;
}

absl::StatusOr<std::string> BlobStore::Path(const std::string& sha256) const {
  if (!IsSha256Hex(sha256)) return absl::InvalidArgumentError(absl::StrCat("'", sha256, "' is not a sha256"));
  const fs::path p = fs::path(dir_) / sha256;
  std::error_code ec;
  if (!fs::is_regular_file(p, ec)) return absl::NotFoundError(absl::StrCat("no uploaded file ", sha256));
  return p.string();
}

absl::StatusOr<std::string> BlobStore::PathFor(const std::string& sha256, const std::string& owner) const {
  ASSIGN_OR_RETURN(auto path, Path(sha256));
  if (owner.empty()) return path;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = stored_.find(sha256);
  if (it == stored_.end() || !it->second.owners.count(owner)) {
    return absl::NotFoundError(absl::StrCat("no uploaded file ", sha256));
  }
  return path;
}

absl::StatusOr<uint64_t> BlobStore::Size(const std::string& sha256) const {
  ASSIGN_OR_RETURN(auto path, Path(sha256));
  std::error_code ec;
  const uint64_t size = fs::file_size(path, ec);
  if (ec) return absl::NotFoundError(absl::StrCat(path, ": ", ec.message()));
  return size;
}

}  // namespace spriteforge::coordinator
