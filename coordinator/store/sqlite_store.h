// The store in one SQLite file (WAL): the default backend, for one coordinator.
#pragma once

#include <memory>
#include <string>

#include "coordinator/store/store.h"

namespace spriteforge::coordinator {

class Database;

class SqliteStore final : public Store {
 public:
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& path);
  ~SqliteStore() override;
  std::string Backend() const override { return "sqlite"; }

  absl::StatusOr<JobRecord> CreateJob(JobRecord job, const std::vector<ItemRecord>& items,
                                      bool* deduplicated) override;
  absl::StatusOr<JobRecord> BeginJob(JobRecord job, bool* deduplicated) override;
  absl::Status AddItems(const std::string& job_id, const std::vector<ItemRecord>& items) override;
  absl::Status QueueJob(const std::string& job_id) override;
  absl::Status DropLoadingJob(const std::string& job_id) override;  // a load that failed part-way
  absl::StatusOr<JobRecord> GetJob(const std::string& id) override;
  absl::StatusOr<std::vector<JobRecord>> ListJobs(int limit, const std::optional<std::string>& owner) override;
  absl::StatusOr<Backlog> OwnerBacklog(const std::string& owner) override;
  absl::StatusOr<std::vector<JobRecord>> UnfinishedJobs() override;
  absl::StatusOr<std::vector<ItemRecord>> Items(const std::string& job_id) override;
  absl::StatusOr<ItemCounts> Counts(const std::string& job_id) override;
  absl::StatusOr<std::vector<ItemRecord>> QueuedItems() override;
  absl::StatusOr<std::vector<ItemRecord>> QueuedItems(const std::string& job_id, int after, int limit) override;
  absl::Status Lease(const std::string& batch_id, const std::string& worker_id,
                     const std::vector<ItemKey>& items, int64_t expires_ms, int64_t now_ms) override;
  absl::Status RenewLeases(const std::string& worker_id, int64_t expires_ms) override;
  absl::StatusOr<std::vector<std::string>> ExpiredBatches(int64_t now_ms) override;
  absl::StatusOr<std::vector<std::string>> BatchesOfWorker(const std::string& worker_id) override;
  absl::StatusOr<std::vector<ItemRecord>> RunningItems(const std::string& batch_id) override;
  absl::StatusOr<bool> CompleteItem(const std::string& batch_id, const ItemKey& item,
                                    const std::string& image_path, const std::string& sprite_path,
                                    int64_t now_ms) override;
  absl::StatusOr<std::vector<bool>> CompleteItems(const std::vector<Completion>& done, int64_t now_ms) override;
  absl::StatusOr<std::vector<ItemRecord>> ReleaseBatch(
      const std::string& batch_id, int fail_reason, const std::string& message, int max_attempts,
      const std::map<std::pair<std::string, int>, std::string>& item_messages) override;
  absl::StatusOr<std::vector<ItemRecord>> FailQueuedItems(const std::string& job_id, int reason,
                                                          const std::string& message) override;
  absl::StatusOr<std::vector<std::string>> CancelJob(const std::string& job_id, int64_t now_ms) override;
  absl::StatusOr<JobRecord> FinishJobIfComplete(const std::string& job_id, int64_t now_ms) override;
  absl::StatusOr<int> Recover() override;

  absl::Status UpsertWorker(const WorkerRecord& worker) override;
  absl::Status AddWorkerImages(const std::string& worker_id, int64_t images, int64_t now_ms) override;
  absl::StatusOr<std::vector<WorkerRecord>> ListWorkers() override;
  absl::StatusOr<std::map<std::string, int64_t>> Totals() override;
  absl::StatusOr<LeaderLease> ReadLeader() override;
  absl::StatusOr<bool> ClaimLeader(const LeaderLease& seen, const std::string& holder,
                                           const std::string& address, int64_t lease_ms) override;

 private:
  explicit SqliteStore(std::unique_ptr<Database> db);
  absl::StatusOr<std::vector<ItemRecord>> SelectItems(const char* where, const std::string& arg);
  absl::StatusOr<JobRecord> InsertJob(JobRecord job, bool* deduplicated);
  absl::Status InsertItems(const std::string& job_id, const std::vector<ItemRecord>& items);
  std::unique_ptr<Database> db_;
};

}  // namespace spriteforge::coordinator
