// Files uploaded with jobs (LoRAs, img2img start images), kept by content hash: one file
// <dir>/<sha256> however often it is uploaded. An upload is written to a temporary file
// while it is hashed and renamed into place only when complete, so a blob on disk is
// always whole and its name is its hash.
//
// Uploads share the disk with results, so they live on a budget of their own: every blob
// and upload in progress together stay within `BlobBudget::max_total_bytes`, and each
// owner's within its quota; an upload that would not fit is refused before a byte is
// written. Who uploaded a blob is kept beside it (<dir>/owners/<sha256>, one name a line),
// so quotas survive a restart. Blobs no unfinished job names are collected after a grace
// period, and an upload that stalls is cancelled and its partial file removed.
#pragma once

#include <atomic>
#include <cstdint>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/manifest_files.h"
#include "common/sha256.h"

namespace spriteforge::coordinator {

// What uploads may take of the disk; 0: no limit.
struct BlobBudget {
  uint64_t max_total_bytes = 0;  // every blob plus every upload in progress (--blob-max-gb)
};

// A stored blob as collection sees it: `used_ms` is when it was last uploaded or named by
// a submitted job (its file's modification time).
struct BlobEntry {
  std::string sha256;
  uint64_t size = 0;
  int64_t used_ms = 0;
};

// The blobs to delete: those no unfinished job names (`referenced`) that nobody uploaded
// or named for longer than `grace_ms` (a client uploads before it submits, so a young
// blob may belong to a job still on its way).
std::vector<std::string> BlobsToCollect(const std::vector<BlobEntry>& blobs, const std::set<std::string>& referenced,
                                        int64_t now_ms, int64_t grace_ms);

class BlobStore {
 public:
  struct Ref {
    std::string sha256;
    uint64_t size = 0;
  };

  // One upload in progress; abandoned uploads leave nothing behind. Its announced size is
  // reserved on the budget from Begin until it is stored or abandoned.
  class Upload {
   public:
    ~Upload();
    // The first chunk names the kind and the announced size; both are checked against the
    // limits before anything is written.
    absl::Status Append(const std::string& data);
    absl::StatusOr<Ref> Finish();
    // Called (once, from ExpireStalled's thread) when the upload is expired, so its call
    // can be cancelled; set before the first Append.
    void OnExpired(std::function<void()> cancel);

   private:
    friend class BlobStore;
    Upload(BlobStore* store, ManifestFileKind kind, uint64_t announced, std::string owner, uint64_t owner_max_bytes,
           std::string temp_path);
    BlobStore* store_;
    ManifestFileKind kind_;
    uint64_t announced_;
    std::string owner_;
    uint64_t owner_max_bytes_;
    uint64_t written_ = 0;
    std::string temp_path_;
    std::string start_;  // the first bytes, to check a LoRA's header
    std::ofstream out_;
    Sha256 hash_;
    bool done_ = false;
    std::atomic<int64_t> active_ms_;     // steady clock of the last chunk
    std::atomic<bool> expired_{false};   // set by ExpireStalled; its reservation is released
    std::function<void()> on_expired_;
  };

  static absl::StatusOr<std::unique_ptr<BlobStore>> Open(const std::string& dir, UploadLimits limits,
                                                         BlobBudget budget = {});

  // `owner` (empty: nobody's) is charged the blob's size once it is stored; it may hold at
  // most `owner_max_bytes` (0: no limit). RESOURCE_EXHAUSTED, with a one-line reason, when
  // the upload does not fit the folder's budget or, with the owner's other uploads in
  // progress, its quota. Whether the finished file fits what the owner already holds is
  // known only from its hash (sending a file again costs nothing), so Finish checks that.
  absl::StatusOr<std::unique_ptr<Upload>> Begin(ManifestFileKind kind, uint64_t announced_size,
                                                const std::string& owner = "", uint64_t owner_max_bytes = 0);

  // A submitted job names the blob: its grace period starts again, so collection does not
  // take it before the job is stored. NotFound when it is gone.
  absl::Status Touch(const std::string& sha256);
  // Keeps a copy of a file the coordinator made (a result PNG a later item uses as its
  // reference picture) as a blob of nobody's, copied. Its grace period starts now, as an
  // upload's would. Returns its hash.
  absl::StatusOr<Ref> Adopt(const std::string& path);
  // Deletes the blobs BlobsToCollect chooses; returns how many.
  int Collect(const std::set<std::string>& referenced, int64_t now_ms, int64_t grace_ms);
  // Expires uploads that received nothing for `idle_ms` (steady clock): their partial file
  // is removed, their reservation released and their call cancelled. Returns how many.
  int ExpireStalled(int64_t steady_now_ms, int64_t idle_ms);

  uint64_t total_bytes() const;                          // stored and reserved
  uint64_t owner_bytes(const std::string& owner) const;  // stored

  // The blob's path; NotFound when no such blob was uploaded.
  absl::StatusOr<std::string> Path(const std::string& sha256) const;
  // The same for a job of `owner` (empty: without authentication, any blob): NotFound, word
  // for word as for a missing blob, unless the owner uploaded it, so nobody learns by naming
  // a hash whether another owner's file is stored.
  absl::StatusOr<std::string> PathFor(const std::string& sha256, const std::string& owner) const;
  absl::StatusOr<uint64_t> Size(const std::string& sha256) const;
  const UploadLimits& limits() const { return limits_; }
  const std::string& dir() const { return dir_; }

 private:
  struct Stored {
    uint64_t size = 0;
    std::set<std::string> owners;
  };
  BlobStore(std::string dir, UploadLimits limits, BlobBudget budget)
      : dir_(std::move(dir)), limits_(limits), budget_(budget) {}
  void Load();  // what is on disk: sizes and owners
  absl::Status CheckQuota(const Ref& ref, const std::string& owner, uint64_t owner_max_bytes);  // under mu_
  void Charge(const std::string& sha256, uint64_t size, const std::string& owner);               // under mu_
  void Release(Upload* upload);                                                     // under mu_
  std::string OwnersPath(const std::string& sha256) const;

  std::string dir_;
  UploadLimits limits_;
  BlobBudget budget_;
  mutable std::mutex mu_;  // the accounting below, and files moving in or out of dir_
  std::map<std::string, Stored> stored_;
  uint64_t stored_bytes_ = 0;
  uint64_t reserved_bytes_ = 0;
  std::map<std::string, uint64_t> owner_bytes_;     // stored
  std::map<std::string, uint64_t> owner_reserved_;  // uploads in progress
  std::set<Upload*> uploads_;                    // in progress
};

}  // namespace spriteforge::coordinator
