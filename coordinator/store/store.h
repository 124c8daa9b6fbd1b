// The coordinator's durable state in SQLite (WAL): jobs, their items, batch leases and
// workers. Every state change is one transaction, so a coordinator killed at any point
// restarts from a consistent database (Recover) and loses nothing.
//
// Item life cycle: queued -> running (leased to a batch) -> done | failed | cancelled;
// a released lease (worker lost, out of memory, coordinator restart) puts running items
// back to queued. A result is accepted only while its item is running under the batch
// that reports it, so late results of a reassigned item never count twice.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/generation_info.h"
#include "spriteforge/v1/spriteforge.pb.h"

namespace spriteforge::coordinator {

class Database;

// Numbered as the proto's JobState / ItemState so the service converts with a cast.
// kLoading: the job's items are still being written (a large manifest goes in chunks);
// nobody sees it yet, and a restart removes it.
enum class JobState { kLoading = 0, kQueued = 1, kRunning = 2, kDone = 3, kFailed = 4, kCancelled = 5 };
enum class ItemState { kQueued = 1, kRunning = 2, kDone = 3, kFailed = 4, kCancelled = 5 };

struct JobRecord {
  std::string id;
  std::string name;
  std::string model;
  int priority = 0;
  JobState state = JobState::kQueued;
  int64_t created_ms = 0;
  int64_t started_ms = 0;   // first lease; 0 before
  int64_t finished_ms = 0;  // 0 while unfinished
  std::string idempotency_key;
  std::optional<v1::PostprocessSpec> postprocess;  // unset: the job makes no sprites
  int64_t seq = 0;  // submission order, assigned by the store
  std::string owner;  // the submitting token's name; empty without authentication
  int preview_every = 0;  // previews every this many sampling steps; 0: none (they are never stored)
};

struct ItemRecord {
  std::string job_id;
  int index = 0;
  v1::ImageParams image;        // prompt, negative, seed, start image
  v1::SamplingParams sampling;  // the job's model is JobRecord::model
  bool random_seed = false;
  ItemState state = ItemState::kQueued;
  std::string batch_id;
  std::string worker_id;
  int attempts = 0;
  std::string image_path;
  std::string sprite_path;
  int failure = 0;  // proto FailureReason
  std::string failure_message;
  int64_t done_ms = 0;
};

struct ItemCounts {
  int total = 0, queued = 0, running = 0, done = 0, failed = 0, cancelled = 0;
  bool Finished() const { return queued == 0 && running == 0; }
};

struct ItemKey {
  std::string job_id;
  int index = 0;
};

// A result to record: the item, the batch it ran under, and its files.
struct Completion {
  std::string batch_id;
  ItemKey item;
  std::string image_path;
  std::string sprite_path;
};

// An owner's unfinished work: jobs not finished, and their queued or running images.
struct Backlog {
  int64_t jobs = 0;
  int64_t images = 0;
};

struct WorkerRecord {
  std::string id;
  std::string info_json;  // the worker's registration, as JSON
  int64_t last_seen_ms = 0;
  int64_t images_done = 0;
};

class Store {
 public:
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& path);
  ~Store();

  // Creates the job and its items in one transaction. A job with the same non-empty
  // idempotency key already stored comes back instead, with `deduplicated` set.
  absl::StatusOr<JobRecord> CreateJob(JobRecord job, const std::vector<ItemRecord>& items,
                                      bool* deduplicated);
  // The same in steps, for jobs too large for one transaction: the job is created loading,
  // items are added in chunks (each its own transaction), then it is queued.
  absl::StatusOr<JobRecord> BeginJob(JobRecord job, bool* deduplicated);
  absl::Status AddItems(const std::string& job_id, const std::vector<ItemRecord>& items);
  absl::Status QueueJob(const std::string& job_id);
  absl::Status DropLoadingJob(const std::string& job_id);  // a load that failed part-way
  absl::StatusOr<JobRecord> GetJob(const std::string& id);
  // Newest first; with `owner`, only that owner's.
  absl::StatusOr<std::vector<JobRecord>> ListJobs(int limit, const std::optional<std::string>& owner = std::nullopt);
  absl::StatusOr<Backlog> OwnerBacklog(const std::string& owner);
  // Jobs not finished yet, in submission order.
  absl::StatusOr<std::vector<JobRecord>> UnfinishedJobs();
  absl::StatusOr<std::vector<ItemRecord>> Items(const std::string& job_id);
  absl::StatusOr<ItemCounts> Counts(const std::string& job_id);
  // Queued items of every job, by job submission then index.
  absl::StatusOr<std::vector<ItemRecord>> QueuedItems();
  // The job's first `limit` queued items with an index above `after`, by index.
  absl::StatusOr<std::vector<ItemRecord>> QueuedItems(const std::string& job_id, int after, int limit);

  // Leases items to a batch: they become running with attempts + 1; their jobs start.
  absl::Status Lease(const std::string& batch_id, const std::string& worker_id,
                     const std::vector<ItemKey>& items, int64_t expires_ms, int64_t now_ms);
  absl::Status RenewLeases(const std::string& worker_id, int64_t expires_ms);
  absl::StatusOr<std::vector<std::string>> ExpiredBatches(int64_t now_ms);
  absl::StatusOr<std::vector<std::string>> BatchesOfWorker(const std::string& worker_id);
  // The items still running under the batch.
  absl::StatusOr<std::vector<ItemRecord>> RunningItems(const std::string& batch_id);

  // Records a result; false (nothing changed) unless the item runs under `batch_id`.
  absl::StatusOr<bool> CompleteItem(const std::string& batch_id, const ItemKey& item,
                                    const std::string& image_path, const std::string& sprite_path,
                                    int64_t now_ms);
  // Records many results in one transaction (one commit for a group of batches); for
  // each, whether it was accepted.
  absl::StatusOr<std::vector<bool>> CompleteItems(const std::vector<Completion>& done, int64_t now_ms);
  // Ends the batch's lease: items still running go back to the queue, or fail when
  // `fail_reason` is set and they have had `max_attempts`. Returns the affected items
  // (their state after the change).
  // `item_messages` ((job id, index) -> message) replaces `message` for those items.
  absl::StatusOr<std::vector<ItemRecord>> ReleaseBatch(
      const std::string& batch_id, int fail_reason, const std::string& message, int max_attempts,
      const std::map<std::pair<std::string, int>, std::string>& item_messages = {});

  // Fails the job's queued items for good with `reason`; returns them (failed).
  absl::StatusOr<std::vector<ItemRecord>> FailQueuedItems(const std::string& job_id, int reason,
                                                          const std::string& message);

  // Cancels queued and running items; returns the batches that had running items.
  absl::StatusOr<std::vector<std::string>> CancelJob(const std::string& job_id, int64_t now_ms);
  // Marks the job done/failed once no item is queued or running; returns its record.
  absl::StatusOr<JobRecord> FinishJobIfComplete(const std::string& job_id, int64_t now_ms);

  // After a restart: every lease is void (its worker's stream died with the old process),
  // so running items return to the queue, and jobs left loading are removed. Returns how
  // many items were requeued.
  absl::StatusOr<int> Recover();

  absl::Status UpsertWorker(const WorkerRecord& worker);
  absl::Status AddWorkerImages(const std::string& worker_id, int64_t images, int64_t now_ms);
  absl::StatusOr<std::vector<WorkerRecord>> ListWorkers();

  // Totals for metrics: items done, items failed, items queued.
  absl::StatusOr<std::map<std::string, int64_t>> Totals();

 private:
  explicit Store(std::unique_ptr<Database> db);
  absl::StatusOr<std::vector<ItemRecord>> SelectItems(const char* where, const std::string& arg);
  absl::StatusOr<JobRecord> InsertJob(JobRecord job, bool* deduplicated);
  absl::Status InsertItems(const std::string& job_id, const std::vector<ItemRecord>& items);
  std::unique_ptr<Database> db_;
};

}  // namespace spriteforge::coordinator
