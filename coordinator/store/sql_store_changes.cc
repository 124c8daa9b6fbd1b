// SqlStore's changes after submission: releasing a batch, failing or cancelling a job's
// items, finishing a job, recovering after a restart; workers, totals and the leader lease.
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/store/rules.h"
#include "coordinator/store/sql_store.h"

namespace spriteforge::coordinator {

absl::StatusOr<std::vector<ItemRecord>> SqlStore::ReleaseBatch(
    const std::string& batch_id, int fail_reason, const std::string& message, int max_attempts,
    const std::map<std::pair<std::string, int>, std::string>& item_messages) {
  ASSIGN_OR_RETURN(auto tx, Begin());
  ASSIGN_OR_RETURN(auto items, SelectItems(absl::StrCat("WHERE batch_id = $1 AND state = 2 ORDER BY job_id, idx",
                                                        LockRows()),
                                           {batch_id}));
  for (ItemRecord& it : items) {
    it.state = ReleasedItemState(fail_reason, it.attempts, max_attempts);
    it.failure = fail_reason;
    auto own = item_messages.find({it.job_id, it.index});
    it.failure_message = own == item_messages.end() ? message : own->second;
    RETURN_IF_ERROR(Execute("UPDATE items SET state = $1, failure = $2, failure_message = $3, batch_id = '' "
                            "WHERE job_id = $4 AND idx = $5",
                            {int64_t{static_cast<int>(it.state)}, int64_t{fail_reason}, it.failure_message,
                             it.job_id, int64_t{it.index}}));
  }
  RETURN_IF_ERROR(Execute("DELETE FROM leases WHERE batch_id = $1", {batch_id}));
  RETURN_IF_ERROR(tx->Commit());
  return items;
}

absl::StatusOr<std::vector<ItemRecord>> SqlStore::FailQueuedItems(const std::string& job_id, int reason,
                                                                  const std::string& message) {
  ASSIGN_OR_RETURN(auto tx, Begin());
  ASSIGN_OR_RETURN(auto items,
                   SelectItems(absl::StrCat("WHERE job_id = $1 AND state = 1 ORDER BY idx", LockRows()), {job_id}));
  RETURN_IF_ERROR(Execute("UPDATE items SET state = 4, failure = $1, failure_message = $2 WHERE job_id = $3 AND state = 1",
                          {int64_t{reason}, message, job_id}));
  RETURN_IF_ERROR(tx->Commit());
  for (ItemRecord& it : items) {
    it.state = ItemState::kFailed;
    it.failure = reason;
    it.failure_message = message;
  }
  return items;
}

absl::StatusOr<std::vector<ItemRecord>> SqlStore::FailQueuedItems(const std::string& job_id,
                                                                  const std::vector<int>& indices, int reason,
                                                                  const std::string& message) {
  ASSIGN_OR_RETURN(auto tx, Begin());
  std::vector<ItemRecord> failed;
  for (int index : indices) {
    ASSIGN_OR_RETURN(auto items, SelectItems(absl::StrCat("WHERE job_id = $1 AND idx = $2 AND state = 1", LockRows()),
                                             {job_id, int64_t{index}}));
    if (items.empty()) continue;
    RETURN_IF_ERROR(Execute("UPDATE items SET state = 4, failure = $1, failure_message = $2 "
                            "WHERE job_id = $3 AND idx = $4",
                            {int64_t{reason}, message, job_id, int64_t{index}}));
    failed.push_back(std::move(items.front()));
  }
  RETURN_IF_ERROR(tx->Commit());
  for (ItemRecord& it : failed) {
    it.state = ItemState::kFailed;
    it.failure = reason;
    it.failure_message = message;
  }
  return failed;
}

absl::StatusOr<std::vector<std::string>> SqlStore::CancelJob(const std::string& job_id, int64_t now_ms) {
  constexpr int kChunk = 5000;
  ASSIGN_OR_RETURN(auto batches, StartCancel(job_id));
  for (int cancelled = kChunk; cancelled == kChunk;) {
    ASSIGN_OR_RETURN(cancelled, CancelQueuedItems(job_id, kChunk));
  }
  RETURN_IF_ERROR(FinishJobIfComplete(job_id, now_ms).status());
  return batches;
}

absl::StatusOr<std::vector<std::string>> SqlStore::StartCancel(const std::string& job_id) {
  ASSIGN_OR_RETURN(auto tx, Begin());
  ASSIGN_OR_RETURN(auto job, GetJob(job_id));
  if (job.finished_ms != 0) return std::vector<std::string>{};
  ASSIGN_OR_RETURN(auto batches, SelectTexts("SELECT DISTINCT batch_id FROM items WHERE job_id = $1 AND state = 2",
                                             {job_id}));
  RETURN_IF_ERROR(Execute("UPDATE items SET state = 5, batch_id = '' WHERE job_id = $1 AND state = 2", {job_id}));
  RETURN_IF_ERROR(Execute("UPDATE jobs SET state = 5 WHERE id = $1 AND finished_ms = 0", {job_id}));
  RETURN_IF_ERROR(tx->Commit());
  return batches;
}

absl::StatusOr<int> SqlStore::CancelQueuedItems(const std::string& job_id, int limit) {
  ASSIGN_OR_RETURN(auto tx, Begin());
  ASSIGN_OR_RETURN(const int64_t cancelled,
                   Execute("UPDATE items SET state = 5 WHERE job_id = $1 AND state = 1 AND idx IN "
                           "(SELECT idx FROM items WHERE job_id = $1 AND state = 1 ORDER BY idx LIMIT $2)",
                           {job_id, int64_t{limit}}));
  RETURN_IF_ERROR(tx->Commit());
  return static_cast<int>(cancelled);
}

absl::StatusOr<JobRecord> SqlStore::FinishJobIfComplete(const std::string& job_id, int64_t now_ms) {
  ASSIGN_OR_RETURN(auto counts, Counts(job_id));
  if (counts.Finished()) {
    // A cancelled job stays cancelled, whatever its items did before.
    RETURN_IF_ERROR(Write("UPDATE jobs SET state = CASE WHEN state = 5 THEN 5 ELSE $1 END, finished_ms = $2 "
                          "WHERE id = $3 AND finished_ms = 0",
                            {int64_t{static_cast<int>(FinishedJobState(counts))}, now_ms, job_id}));
  }
  return GetJob(job_id);
}

absl::StatusOr<int> SqlStore::Recover() {
  ASSIGN_OR_RETURN(auto tx, Begin());
  ASSIGN_OR_RETURN(const int64_t requeued, Execute("UPDATE items SET state = 1, batch_id = '' WHERE state = 2"));
  RETURN_IF_ERROR(Execute("DELETE FROM leases"));
  // A submission cut short never answered its client, who submits again.
  for (const char* sql : {"DELETE FROM items WHERE job_id IN (SELECT id FROM jobs WHERE state = 0)",
                          "DELETE FROM job_counts WHERE job_id IN (SELECT id FROM jobs WHERE state = 0)",
                          "DELETE FROM jobs WHERE state = 0"}) {
    RETURN_IF_ERROR(Execute(sql));
  }
  RETURN_IF_ERROR(tx->Commit());
  return static_cast<int>(requeued);
}

absl::Status SqlStore::UpsertWorker(const WorkerRecord& w) {
  return Write("INSERT INTO workers(id, info, last_seen_ms) VALUES($1,$2,$3) "
                 "ON CONFLICT(id) DO UPDATE SET info = excluded.info, last_seen_ms = excluded.last_seen_ms",
                 {w.id, w.info_json, w.last_seen_ms})
      .status();
}

absl::Status SqlStore::AddWorkerImages(const std::string& worker_id, int64_t images, int64_t now_ms) {
  return Write("UPDATE workers SET images_done = images_done + $1, last_seen_ms = $2 WHERE id = $3",
                 {images, now_ms, worker_id})
      .status();
}

absl::StatusOr<std::vector<WorkerRecord>> SqlStore::ListWorkers() {
  std::vector<WorkerRecord> out;
  RETURN_IF_ERROR(Select("SELECT id, info, last_seen_ms, images_done FROM workers ORDER BY id", {},
                         [&](const Row& r) { out.push_back({r.Text(0), r.Text(1), r.Int(2), r.Int(3)}); }));
  return out;
}

absl::Status SqlStore::DeleteWorkers(const std::vector<std::string>& ids) {
  if (ids.empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(auto tx, Begin());
  for (const std::string& id : ids) RETURN_IF_ERROR(Execute("DELETE FROM workers WHERE id = $1", {id}).status());
  return tx->Commit();
}

absl::StatusOr<std::map<std::string, int64_t>> SqlStore::Totals() {
  std::map<std::string, int64_t> out{{"done", 0}, {"failed", 0}, {"queued", 0}, {"running", 0}, {"cancelled", 0}};
  RETURN_IF_ERROR(Select("SELECT COALESCE(SUM(queued), 0), COALESCE(SUM(running), 0), COALESCE(SUM(done), 0), "
                         "COALESCE(SUM(failed), 0), COALESCE(SUM(cancelled), 0) FROM job_counts",
                         {}, [&](const Row& r) {
                           out["queued"] = r.Int(0);
                           out["running"] = r.Int(1);
                           out["done"] = r.Int(2);
                           out["failed"] = r.Int(3);
                           out["cancelled"] = r.Int(4);
                         }));
  return out;
}

absl::StatusOr<LeaderLease> SqlStore::ReadLeader() {
  LeaderLease out;
  RETURN_IF_ERROR(Select(absl::StrCat("SELECT holder, address, expires_ms, ", NowMs(), ", epoch FROM leader WHERE id = 1"),
                         {}, [&](const Row& r) { out = {r.Text(0), r.Text(1), r.Int(2), r.Int(3), r.Int(4)}; }));
  return out;
}

absl::StatusOr<bool> SqlStore::ClaimLeader(const LeaderLease& seen, const std::string& holder,
                                           const std::string& address, int64_t lease_ms) {
  ASSIGN_OR_RETURN(const int64_t claimed,
                   Execute(absl::StrCat("UPDATE leader SET holder = $1, address = $2, expires_ms = ", NowMs(),
                                        " + $3, epoch = epoch + CASE WHEN holder = $1 THEN 0 ELSE 1 END "
                                        "WHERE id = 1 AND holder = $4 AND expires_ms = $5 AND epoch = $6"),
                           {holder, address, lease_ms, seen.holder, seen.expires_ms, seen.epoch}));
  return claimed == 1;
}

}  // namespace spriteforge::coordinator
