#include "coordinator/store/blob_store.h"

#include <unistd.h>

#include <atomic>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace spriteforge::coordinator {

namespace fs = std::filesystem;

absl::StatusOr<std::unique_ptr<BlobStore>> BlobStore::Open(const std::string& dir, UploadLimits limits) {
  std::error_code ec;
  fs::create_directories(fs::path(dir) / "incoming", ec);
  if (ec) return absl::FailedPreconditionError(absl::StrCat("cannot create blob folder ", dir, ": ", ec.message()));
  // Uploads cut short by a previous process.
  for (const auto& e : fs::directory_iterator(fs::path(dir) / "incoming", ec)) fs::remove(e.path(), ec);
  return std::unique_ptr<BlobStore>(new BlobStore(dir, limits));
}

absl::StatusOr<std::unique_ptr<BlobStore::Upload>> BlobStore::Begin(ManifestFileKind kind, uint64_t announced) {
  if (announced > limits_.MaxBytes(kind)) {
    return absl::InvalidArgumentError(absl::StrCat("the ", KindName(kind), " is ", announced,
                                                   " bytes; the limit is ", limits_.MaxBytes(kind)));
  }
  static std::atomic<uint64_t> counter{0};
  const std::string temp = (fs::path(dir_) / "incoming" / absl::StrCat(getpid(), "-", counter++)).string();
  std::unique_ptr<Upload> upload(new Upload(this, kind, announced, temp));
  if (!upload->out_) return absl::ResourceExhaustedError(absl::StrCat("cannot write ", temp));
  return upload;
}

BlobStore::Upload::Upload(BlobStore* store, ManifestFileKind kind, uint64_t announced, std::string temp_path)
    : store_(store), kind_(kind), announced_(announced), temp_path_(std::move(temp_path)),
      out_(temp_path_, std::ios::binary | std::ios::trunc) {}

BlobStore::Upload::~Upload() {
  if (done_) return;
  out_.close();
  std::error_code ec;
  fs::remove(temp_path_, ec);
}

absl::Status BlobStore::Upload::Append(const std::string& data) {
  if (written_ + data.size() > announced_) {
    return absl::InvalidArgumentError(absl::StrCat("the upload is longer than the announced ", announced_, " bytes"));
  }
  if (start_.size() < 9) start_.append(data, 0, std::min<size_t>(9 - start_.size(), data.size()));
  if (kind_ == ManifestFileKind::kLora && start_.size() >= 9) {
    if (auto problem = SafetensorsStartProblem(start_); !problem.empty()) return absl::InvalidArgumentError(problem);
  }
  out_.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!out_) return absl::ResourceExhaustedError(absl::StrCat("cannot write ", temp_path_, " (disk full?)"));
  hash_.Update(data);
  written_ += data.size();
  return absl::OkStatus();
}

absl::StatusOr<BlobStore::Ref> BlobStore::Upload::Finish() {
  if (written_ != announced_) {
    return absl::InvalidArgumentError(absl::StrCat("the upload ended after ", written_, " of ", announced_, " bytes"));
  }
  if (kind_ == ManifestFileKind::kLora) {
    if (auto problem = SafetensorsStartProblem(start_); !problem.empty()) return absl::InvalidArgumentError(problem);
  }
  out_.flush();
  out_.close();
  if (!out_) return absl::ResourceExhaustedError(absl::StrCat("cannot write ", temp_path_, " (disk full?)"));
  Ref ref{hash_.HexDigest(), written_};
  const fs::path final_path = fs::path(store_->dir_) / ref.sha256;
  std::error_code ec;
  if (fs::exists(final_path, ec)) {
    fs::remove(temp_path_, ec);  // the same bytes are already kept
  } else {
    fs::rename(temp_path_, final_path, ec);
    if (ec) return absl::ResourceExhaustedError(absl::StrCat("cannot store ", final_path.string(), ": ", ec.message()));
  }
  done_ = true;
  return ref;
}

absl::StatusOr<std::string> BlobStore::Path(const std::string& sha256) const {
  if (!IsSha256Hex(sha256)) return absl::InvalidArgumentError(absl::StrCat("'", sha256, "' is not a sha256"));
  const fs::path p = fs::path(dir_) / sha256;
  std::error_code ec;
  if (!fs::is_regular_file(p, ec)) return absl::NotFoundError(absl::StrCat("no uploaded file ", sha256));
  return p.string();
}

absl::StatusOr<uint64_t> BlobStore::Size(const std::string& sha256) const {
  ASSIGN_OR_RETURN(auto path, Path(sha256));
  std::error_code ec;
  const uint64_t size = fs::file_size(path, ec);
  if (ec) return absl::NotFoundError(absl::StrCat(path, ": ", ec.message()));
  return size;
}

}  // namespace spriteforge::coordinator
