// What the SQLite and PostgreSQL stores share: every Store method whose statements and
// steps are the same in both dialects is written once here, over a few primitives each
// backend provides (begin a transaction, run a statement, read rows, insert item rows).
// The tables are schema.h's. The backends keep what really differs: opening, how many item
// rows go in one INSERT, how a batch leases its items (PostgreSQL: SKIP LOCKED in one
// statement) and how a group of results is recorded, and their clock expression.
//
// Shared statements use PostgreSQL's numbered parameters ($1, $2 ...); SQLite reads them
// as its own ?1, ?2 (SqliteStore::Execute), so one text serves both.
#pragma once

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "coordinator/store/rows.h"
#include "coordinator/store/store.h"
#include "coordinator/store/transaction.h"

namespace spriteforge::coordinator {

class SqlStore : public Store {
 public:
  absl::StatusOr<JobRecord> CreateJob(JobRecord job, const std::vector<ItemRecord>& items,
                                      bool* deduplicated) override;
  absl::StatusOr<JobRecord> BeginJob(JobRecord job, bool* deduplicated) override;
  absl::Status AddItems(const std::string& job_id, const std::vector<ItemRecord>& items) override;
  absl::Status QueueJob(const std::string& job_id) override;
  absl::Status DropLoadingJob(const std::string& job_id) override;
  absl::Status DeleteJob(const std::string& job_id) override;
  absl::StatusOr<JobRecord> GetJob(const std::string& id) override;
  absl::StatusOr<std::vector<JobRecord>> ListJobs(int limit, const std::optional<std::string>& owner) override;
  absl::StatusOr<JobPage> FindJobs(const JobQuery& query) override;
  absl::StatusOr<Backlog> OwnerBacklog(const std::string& owner) override;
  absl::StatusOr<std::vector<JobRecord>> UnfinishedJobs() override;
  absl::StatusOr<std::vector<ItemRecord>> Items(const std::string& job_id) override;
  absl::StatusOr<ItemCounts> Counts(const std::string& job_id) override;
  absl::StatusOr<std::vector<ItemRecord>> QueuedItems() override;
  absl::StatusOr<std::vector<ItemRecord>> QueuedItems(const std::string& job_id, int after, int limit) override;
  absl::Status RenewLeases(const std::string& worker_id, int64_t expires_ms) override;
  absl::StatusOr<std::vector<std::string>> ExpiredBatches(int64_t now_ms) override;
  absl::StatusOr<std::vector<std::string>> BatchesOfWorker(const std::string& worker_id) override;
  absl::StatusOr<std::vector<ItemRecord>> RunningItems(const std::string& batch_id) override;
  // One result is a group of one (CompleteItems).
  absl::StatusOr<bool> CompleteItem(const std::string& batch_id, const ItemKey& item,
                                    const std::string& image_path, const std::string& sprite_path,
                                    int64_t now_ms) override;
  // Fenced, then the accepted results' rows locked, placed (`place`) and recorded, in one
  // transaction: an old leader's files never replace a new leader's (docs/reliability.md).
  absl::StatusOr<std::vector<bool>> CompleteItems(const std::vector<Completion>& done, int64_t now_ms,
                                                  const PlaceResults& place = nullptr) override;
  absl::StatusOr<std::vector<ItemRecord>> ReleaseBatch(
      const std::string& batch_id, int fail_reason, const std::string& message, int max_attempts,
      const std::map<std::pair<std::string, int>, std::string>& item_messages) override;
  absl::StatusOr<std::vector<ItemRecord>> FailQueuedItems(const std::string& job_id, int reason,
                                                          const std::string& message) override;
  absl::StatusOr<std::vector<ItemRecord>> FailQueuedItems(const std::string& job_id, const std::vector<int>& indices,
                                                          int reason, const std::string& message) override;
  absl::StatusOr<std::vector<std::string>> CancelJob(const std::string& job_id, int64_t now_ms) override;
  absl::StatusOr<std::vector<std::string>> StartCancel(const std::string& job_id) override;
  absl::StatusOr<int> CancelQueuedItems(const std::string& job_id, int limit) override;
  absl::StatusOr<std::vector<ItemRecord>> ItemsPage(const std::string& job_id, int after, int limit) override;
  absl::StatusOr<JobRecord> FinishJobIfComplete(const std::string& job_id, int64_t now_ms) override;
  absl::StatusOr<int> Recover() override;

  absl::Status UpsertWorker(const WorkerRecord& worker) override;
  absl::Status AddWorkerImages(const std::string& worker_id, int64_t images, int64_t now_ms) override;
  absl::StatusOr<std::vector<WorkerRecord>> ListWorkers() override;
  absl::Status DeleteWorkers(const std::vector<std::string>& ids) override;
  absl::StatusOr<std::map<std::string, int64_t>> Totals() override;
  absl::StatusOr<LeaderLease> ReadLeader() override;
  absl::StatusOr<bool> ClaimLeader(const LeaderLease& seen, const std::string& holder,
                                   const std::string& address, int64_t lease_ms) override;
  void SetFencingEpoch(int64_t epoch, std::function<void(const absl::Status&)> on_fenced) override;

  // A database opening: either fresh (none of the store's tables) or a store with every
  // table that holds jobs and their items (`with_counts`: job_counts too; SQLite stores
  // before schema version 1 had none). A table missing from a store is damage: refused,
  // naming it, rather than made again empty (its items would be lost without a word).
  static absl::Status CheckTables(const std::string& db_name, const std::set<std::string>& present,
                                  bool with_counts);
  // Refuses, naming the first, job or item rows in a state this coordinator does not know
  // (damage, or a newer version's): they would be served as whatever the number means.
  absl::Status CheckStates(const std::string& db_name);
  // Jobs stored before jobs had a search text (or by a coordinator that wrote none) get
  // theirs, made from their items' prompts; a job that has one is left as it is.
  absl::Status FillSearchTexts(const std::string& db_name);

 protected:
  // The backend's primitives. A transaction begun (status() ok or not) on the connection.
  virtual std::unique_ptr<SqlTransaction> NewTransaction() = 0;
  // Runs one statement; returns the rows it changed (INSERT, UPDATE, DELETE).
  virtual absl::StatusOr<int64_t> Execute(const std::string& sql, const std::vector<SqlValue>& args = {}) = 0;
  // Runs one query, calling `each` on every row of its result in order.
  virtual absl::Status Select(const std::string& sql, const std::vector<SqlValue>& args,
                              const std::function<void(const Row&)>& each) = 0;
  // Inserts the items as queued rows of the job (their count is SqlStore's to keep).
  virtual absl::Status InsertItemRows(const std::string& job_id, const std::vector<ItemRecord>& items) = 0;
  // Appended to a SELECT inside a transaction whose rows it will change: " FOR UPDATE"
  // where rows are locked one by one; empty where the transaction holds the database.
  virtual const char* LockRows() const = 0;
  // An SQL expression: the database's clock in milliseconds since the epoch.
  virtual const char* NowMs() const = 0;
  // (job id, index, batch id) of the results in `done` whose item runs under their batch,
  // locked until the transaction ends (inside one).
  using ResultKey = std::tuple<std::string, int, std::string>;
  virtual absl::StatusOr<std::set<ResultKey>> LockRunning(const std::vector<Completion>& done);
  // Records the results as done (inside a transaction; each one's item runs under its batch).
  virtual absl::Status RecordResults(const std::vector<Completion>& done, int64_t now_ms) = 0;
  // How long the database lets a transaction sit idle before it ends it; 0: no limit.
  virtual int64_t IdleTransactionLimitMs() const { return 0; }
  // Appended to the fencing check's SELECT of the leader row: " FOR SHARE" where a takeover
  // (an UPDATE of that row) must wait for the write transactions in flight, and they for it.
  virtual const char* ShareRow() const { return ""; }

  // NewTransaction, or why it did not begin; once fenced (SetFencingEpoch), also why this
  // coordinator may no longer write.
  absl::StatusOr<std::unique_ptr<SqlTransaction>> Begin();
  // One statement in a transaction of its own (so it is fenced like every write).
  absl::StatusOr<int64_t> Write(const std::string& sql, const std::vector<SqlValue>& args);
  absl::StatusOr<std::vector<JobRecord>> SelectJobs(const std::string& where, const std::vector<SqlValue>& args);
  absl::StatusOr<std::vector<ItemRecord>> SelectItems(const std::string& where, const std::vector<SqlValue>& args);
  absl::StatusOr<std::vector<std::string>> SelectTexts(const std::string& sql, const std::vector<SqlValue>& args);

 private:
  absl::Status CheckFence();
  absl::StatusOr<JobRecord> InsertJob(JobRecord job, bool* deduplicated);
  absl::Status InsertItems(const std::string& job_id, const std::vector<ItemRecord>& items);

  int64_t fencing_epoch_ = 0;  // 0: not fenced
  std::function<void(const absl::Status&)> on_fenced_;
};

}  // namespace spriteforge::coordinator
