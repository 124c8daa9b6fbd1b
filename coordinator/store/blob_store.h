// Files uploaded with jobs (LoRAs, img2img start images), kept by content hash: one file
// <dir>/<sha256> however often it is uploaded. An upload is written to a temporary file
// while it is hashed and renamed into place only when complete, so a blob on disk is
// always whole and its name is its hash.
#pragma once

#include <cstdint>
#include <fstream>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/manifest_files.h"
#include "common/sha256.h"

namespace spriteforge::coordinator {

class BlobStore {
 public:
  struct Ref {
    std::string sha256;
    uint64_t size = 0;
  };

  // One upload in progress; abandoned uploads leave nothing behind.
  class Upload {
   public:
    ~Upload();
    // The first chunk names the kind and the announced size; both are checked against the
    // limits before anything is written.
    absl::Status Append(const std::string& data);
    absl::StatusOr<Ref> Finish();

   private:
    friend class BlobStore;
    Upload(BlobStore* store, ManifestFileKind kind, uint64_t announced, std::string temp_path);
    BlobStore* store_;
    ManifestFileKind kind_;
    uint64_t announced_;
    uint64_t written_ = 0;
    std::string temp_path_;
    std::string start_;  // the first bytes, to check a LoRA's header
    std::ofstream out_;
    Sha256 hash_;
    bool done_ = false;
  };

  static absl::StatusOr<std::unique_ptr<BlobStore>> Open(const std::string& dir, UploadLimits limits);

  absl::StatusOr<std::unique_ptr<Upload>> Begin(ManifestFileKind kind, uint64_t announced_size);

  // The blob's path; NotFound when no such blob was uploaded.
  absl::StatusOr<std::string> Path(const std::string& sha256) const;
  absl::StatusOr<uint64_t> Size(const std::string& sha256) const;
  const UploadLimits& limits() const { return limits_; }
  const std::string& dir() const { return dir_; }

 private:
  BlobStore(std::string dir, UploadLimits limits) : dir_(std::move(dir)), limits_(limits) {}
  std::string dir_;
  UploadLimits limits_;
};

}  // namespace spriteforge::coordinator
