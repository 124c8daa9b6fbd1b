// The coordinator's durable state: jobs, their items, batch leases, workers and the leader
// lease of coordinators sharing one database. Every state change is one transaction, so a
// coordinator killed at any point restarts from a consistent database (Recover) and loses
// nothing. Two backends implement it: SQLite (a file, the default; sqlite_store.h) and
// PostgreSQL (a server several coordinators can share; postgres_store.h), both over SqlStore
// (sql_store.h), which holds the statements they share. Store::Open picks one by the --db
// value.
//
// Item life cycle: queued -> running (leased to a batch) -> done | failed | cancelled;
// a released lease (worker lost, out of memory, coordinator restart) puts running items
// back to queued. A result is accepted only while its item is running under the batch
// that reports it, so late results of a reassigned item never count twice.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
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
  // The prompts of the job's entries, for searching the job history (JobQuery): stored in
  // the job's search text when it is created, not read back. CreateJob takes its items'
  // prompts when this is empty.
  std::vector<std::string> prompts;
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

// A page of the job history, newest first: jobs (not loading) matching every word of
// `text` and the other bounds. A word matches when it occurs, ASCII letters in either case,
// in the job's search text (its name, model, owner and the prompts of its entries, see
// JobRecord::prompts), when it begins the job's id ("job-3f"), or when it names the job's
// state (queued, running, done, failed, cancelled). Words are matched by a scan of the jobs
// rows (LIKE, no index): about a millisecond per thousand jobs, per page and its count.
struct JobQuery {
  std::string text;              // words separated by white space; empty: every job
  int64_t created_from_ms = 0;   // created at or after; 0: no bound
  int64_t created_until_ms = 0;  // created before; 0: no bound
  std::optional<std::string> owner;  // only this owner's jobs
  int offset = 0;                // matching jobs skipped before the page
  int limit = 100;
};
struct JobPage {
  std::vector<JobRecord> jobs;
  int64_t total = 0;  // jobs matching, over all pages
};

// The leader lease row: who leads the coordinators sharing this database, until when, and
// the database's clock when it was read (every coordinator compares against that one
// clock, so their own clocks may differ).
struct LeaderLease {
  std::string holder;   // empty: nobody has led yet
  std::string address;  // where the holder serves clients, for the standby's answer
  int64_t expires_ms = 0;
  int64_t now_ms = 0;   // the database's clock
  // Counts the changes of holder: the fencing token of whoever leads (SetFencingEpoch).
  int64_t epoch = 0;
};

// Whether `spec` names a PostgreSQL database (postgresql://... or postgres://...) rather
// than a SQLite file.
bool IsPostgresUrl(const std::string& spec);

class Store {
 public:
  // A file path opens SQLite; a postgresql:// URL opens PostgreSQL.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& spec);
  virtual ~Store() = default;
  virtual std::string Backend() const = 0;  // "sqlite" or "postgresql", for logs

  // Creates the job and its items in one transaction. A job of the same owner with the same
  // non-empty idempotency key already stored comes back instead, with `deduplicated` set.
  virtual absl::StatusOr<JobRecord> CreateJob(JobRecord job, const std::vector<ItemRecord>& items,
                                      bool* deduplicated) = 0;
  // The same in steps, for jobs too large for one transaction: the job is created loading,
  // items are added in chunks (each its own transaction), then it is queued.
  virtual absl::StatusOr<JobRecord> BeginJob(JobRecord job, bool* deduplicated) = 0;
  virtual absl::Status AddItems(const std::string& job_id, const std::vector<ItemRecord>& items) = 0;
  virtual absl::Status QueueJob(const std::string& job_id) = 0;
  virtual absl::Status DropLoadingJob(const std::string& job_id) = 0;  // a load that failed part-way
  // Removes a finished job and its items; NOT_FOUND when there is none, FAILED_PRECONDITION
  // while it is unfinished (cancel it first).
  virtual absl::Status DeleteJob(const std::string& job_id) = 0;
  virtual absl::StatusOr<JobRecord> GetJob(const std::string& id) = 0;
  // Newest first; with `owner`, only that owner's.
  virtual absl::StatusOr<std::vector<JobRecord>> ListJobs(int limit, const std::optional<std::string>& owner = std::nullopt) = 0;
  // A page of the jobs matching `query`, with how many match in all.
  virtual absl::StatusOr<JobPage> FindJobs(const JobQuery& query) = 0;
  virtual absl::StatusOr<Backlog> OwnerBacklog(const std::string& owner) = 0;
  // Jobs not finished yet, in submission order.
  virtual absl::StatusOr<std::vector<JobRecord>> UnfinishedJobs() = 0;
  virtual absl::StatusOr<std::vector<ItemRecord>> Items(const std::string& job_id) = 0;
  virtual absl::StatusOr<ItemCounts> Counts(const std::string& job_id) = 0;
  // Queued items of every job, by job submission then index.
  virtual absl::StatusOr<std::vector<ItemRecord>> QueuedItems() = 0;
  // The job's first `limit` queued items with an index above `after`, by index.
  virtual absl::StatusOr<std::vector<ItemRecord>> QueuedItems(const std::string& job_id, int after, int limit) = 0;

  // Leases items to a batch: they become running with attempts + 1; their jobs start.
  virtual absl::Status Lease(const std::string& batch_id, const std::string& worker_id,
                     const std::vector<ItemKey>& items, int64_t expires_ms, int64_t now_ms) = 0;
  virtual absl::Status RenewLeases(const std::string& worker_id, int64_t expires_ms) = 0;
  virtual absl::StatusOr<std::vector<std::string>> ExpiredBatches(int64_t now_ms) = 0;
  virtual absl::StatusOr<std::vector<std::string>> BatchesOfWorker(const std::string& worker_id) = 0;
  // The items still running under the batch.
  virtual absl::StatusOr<std::vector<ItemRecord>> RunningItems(const std::string& batch_id) = 0;

  // Records a result; false (nothing changed) unless the item runs under `batch_id`.
  virtual absl::StatusOr<bool> CompleteItem(const std::string& batch_id, const ItemKey& item,
                                    const std::string& image_path, const std::string& sprite_path,
                                    int64_t now_ms) = 0;
  // Puts a group's result files in place inside CompleteItems' transaction, after its fence
  // check, with the rows of the accepted results locked: `accepted[i]` says whether done[i]
  // will be recorded (its item runs under its batch; of a result listed twice, the first).
  // Returns, for each, whether its files are in place; one that is not is not recorded.
  // Nothing may be placed once `deadline` (steady clock) has passed: the database may have
  // ended the transaction by then (a PostgreSQL session idle in a transaction too long), so
  // another coordinator may lead. Files placed before a commit that then fails are leftovers
  // that a later render of the item replaces.
  using PlaceResults = std::function<std::vector<bool>(const std::vector<bool>& accepted,
                                                       std::chrono::steady_clock::time_point deadline)>;
  // Records many results in one transaction (one commit for a group of batches); for
  // each, whether it was accepted (and placed, with `place`).
  virtual absl::StatusOr<std::vector<bool>> CompleteItems(const std::vector<Completion>& done, int64_t now_ms,
                                                          const PlaceResults& place = nullptr) = 0;
  // Ends the batch's lease: items still running go back to the queue, or fail when
  // `fail_reason` is set and they have had `max_attempts`. Returns the affected items
  // (their state after the change).
  // `item_messages` ((job id, index) -> message) replaces `message` for those items.
  virtual absl::StatusOr<std::vector<ItemRecord>> ReleaseBatch(
      const std::string& batch_id, int fail_reason, const std::string& message, int max_attempts,
      const std::map<std::pair<std::string, int>, std::string>& item_messages = {}) = 0;

  // Fails the job's queued items for good with `reason`; returns them (failed).
  virtual absl::StatusOr<std::vector<ItemRecord>> FailQueuedItems(const std::string& job_id, int reason,
                                                          const std::string& message) = 0;
  // The same for those of the job's items listed that are still queued (the others are left
  // as they are), in one transaction; returns them (failed).
  virtual absl::StatusOr<std::vector<ItemRecord>> FailQueuedItems(const std::string& job_id,
                                                                  const std::vector<int>& indices, int reason,
                                                                  const std::string& message) = 0;

  // Cancels queued and running items and finishes the job, all at once (StartCancel, then
  // CancelQueuedItems until none is left); returns the batches that had running items.
  virtual absl::StatusOr<std::vector<std::string>> CancelJob(const std::string& job_id, int64_t now_ms) = 0;
  // Cancelling in steps, so a large job never holds the database (or the coordinator) for
  // long: StartCancel marks the job cancelled and cancels its running items, returning their
  // batches (nothing of the job is leased again); CancelQueuedItems then cancels at most
  // `limit` of its queued items per call, one transaction each, returning how many; once
  // none is left FinishJobIfComplete records it finished, still cancelled. A job cancelled
  // part-way is unfinished (UnfinishedJobs) with state kCancelled, so a restart completes it.
  // A finished job is left as it is.
  virtual absl::StatusOr<std::vector<std::string>> StartCancel(const std::string& job_id) = 0;
  virtual absl::StatusOr<int> CancelQueuedItems(const std::string& job_id, int limit) = 0;
  // The job's items with an index above `after`, by index, at most `limit`: a page of Items.
  virtual absl::StatusOr<std::vector<ItemRecord>> ItemsPage(const std::string& job_id, int after, int limit) = 0;
  // Marks the job done/failed once no item is queued or running; returns its record.
  virtual absl::StatusOr<JobRecord> FinishJobIfComplete(const std::string& job_id, int64_t now_ms) = 0;

  // After a restart or a standby's takeover: every lease is void (its worker's stream died
  // with the old process), so running items return to the queue, and jobs left loading are removed. Returns how
  // many items were requeued.
  virtual absl::StatusOr<int> Recover() = 0;

  virtual absl::Status UpsertWorker(const WorkerRecord& worker) = 0;
  virtual absl::Status AddWorkerImages(const std::string& worker_id, int64_t images, int64_t now_ms) = 0;
  virtual absl::StatusOr<std::vector<WorkerRecord>> ListWorkers() = 0;
  // Forgets these workers, in one transaction (worker retention); their results stay in
  // the items.
  virtual absl::Status DeleteWorkers(const std::vector<std::string>& ids) = 0;

  // Totals for metrics: items done, items failed, items queued.
  virtual absl::StatusOr<std::map<std::string, int64_t>> Totals() = 0;

  // The leader lease: ReadLeader reads it; ClaimLeader sets it to `holder` for `lease_ms`
  // (database clock) only if it is still as `seen` (compare and set), so of two claims
  // on one lapsed lease exactly one wins. True when this claim won.
  virtual absl::StatusOr<LeaderLease> ReadLeader() = 0;
  virtual absl::StatusOr<bool> ClaimLeader(const LeaderLease& seen, const std::string& holder,
                                           const std::string& address, int64_t lease_ms) = 0;

  // Fencing, for the leader of a shared database: from now on every write transaction
  // first checks, in the same transaction, that the leader row still has `epoch` (the one
  // this coordinator took the lead in), and otherwise changes nothing and fails
  // FAILED_PRECONDITION "fenced: ..." after calling `on_fenced` with that error. So a leader
  // that was paused past its lease cannot write once another has taken over, whatever its
  // own clock says. A backend without leader leases (SQLite) may ignore it.
  virtual void SetFencingEpoch(int64_t epoch, std::function<void(const absl::Status&)> on_fenced = nullptr) = 0;
};

}  // namespace spriteforge::coordinator
