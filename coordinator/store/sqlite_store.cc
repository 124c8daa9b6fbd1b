#include "coordinator/store/sqlite_store.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/store/legacy_rows.h"
#include "coordinator/store/rows.h"
#include "coordinator/store/rules.h"
#include "coordinator/store/sqlite.h"

namespace spriteforge::coordinator {
namespace {

constexpr const char* kSchemaHead = R"sql(
CREATE TABLE IF NOT EXISTS jobs(
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  model TEXT NOT NULL,
  priority INTEGER NOT NULL,
  state INTEGER NOT NULL,
  created_ms INTEGER NOT NULL,
  started_ms INTEGER NOT NULL DEFAULT 0,
  finished_ms INTEGER NOT NULL DEFAULT 0,
  idempotency_key TEXT,
  owner TEXT NOT NULL DEFAULT '',
  )sql";
// Between the parts: the jobs' settings columns, then the items' image-parameter columns (rows.h).
constexpr const char* kSchemaItems = R"sql();
CREATE UNIQUE INDEX IF NOT EXISTS jobs_key ON jobs(idempotency_key) WHERE idempotency_key <> '';
CREATE TABLE IF NOT EXISTS items(
  job_id TEXT NOT NULL REFERENCES jobs(id),
  idx INTEGER NOT NULL,
  )sql";
constexpr const char* kSchemaTail = R"sql(,
  state INTEGER NOT NULL,
  batch_id TEXT NOT NULL DEFAULT '',
  worker_id TEXT NOT NULL DEFAULT '',
  attempts INTEGER NOT NULL DEFAULT 0,
  image_path TEXT NOT NULL DEFAULT '',
  sprite_path TEXT NOT NULL DEFAULT '',
  failure INTEGER NOT NULL DEFAULT 0,
  failure_message TEXT NOT NULL DEFAULT '',
  done_ms INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY(job_id, idx));
-- A job's queue in index order, and its items by state.
CREATE INDEX IF NOT EXISTS items_queue ON items(job_id, state, idx);
DROP INDEX IF EXISTS items_state;
CREATE INDEX IF NOT EXISTS items_batch ON items(batch_id);
CREATE TABLE IF NOT EXISTS leases(
  batch_id TEXT PRIMARY KEY,
  worker_id TEXT NOT NULL,
  expires_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS leases_worker ON leases(worker_id);
-- Items per state of each job, kept by a trigger in the same transaction as every change,
-- so progress and totals are one row read instead of a count over the job's items.
CREATE TABLE IF NOT EXISTS job_counts(
  job_id TEXT PRIMARY KEY,
  total INTEGER NOT NULL DEFAULT 0,
  queued INTEGER NOT NULL DEFAULT 0,
  running INTEGER NOT NULL DEFAULT 0,
  done INTEGER NOT NULL DEFAULT 0,
  failed INTEGER NOT NULL DEFAULT 0,
  cancelled INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS items_count_states AFTER UPDATE OF state ON items WHEN old.state <> new.state
BEGIN
  UPDATE job_counts SET
    queued = queued + (new.state = 1) - (old.state = 1),
    running = running + (new.state = 2) - (old.state = 2),
    done = done + (new.state = 3) - (old.state = 3),
    failed = failed + (new.state = 4) - (old.state = 4),
    cancelled = cancelled + (new.state = 5) - (old.state = 5)
  WHERE job_id = new.job_id;
END;
CREATE TABLE IF NOT EXISTS workers(
  id TEXT PRIMARY KEY,
  info TEXT NOT NULL,
  last_seen_ms INTEGER NOT NULL,
  images_done INTEGER NOT NULL DEFAULT 0);
-- Who leads the coordinators sharing this database (one row).
CREATE TABLE IF NOT EXISTS leader(
  id INTEGER PRIMARY KEY CHECK (id = 1),
  holder TEXT NOT NULL,
  address TEXT NOT NULL,
  expires_ms INTEGER NOT NULL);
INSERT OR IGNORE INTO leader(id, holder, address, expires_ms) VALUES(1, '', '', 0);
)sql";

std::string Schema() {
  return absl::StrCat(kSchemaHead, JobSettingColumnDefinitions(SqlDialect::kSqlite), kSchemaItems,
                      ItemParamColumnDefinitions(SqlDialect::kSqlite), kSchemaTail);
}

}  // namespace

SqliteStore::SqliteStore(std::unique_ptr<Database> db) : db_(std::move(db)) {}
SqliteStore::~SqliteStore() = default;

// Schema version 1 added job_counts: a database from before gets its counts once.
constexpr const char* kCountExistingJobs = R"sql(
INSERT OR REPLACE INTO job_counts(job_id, total, queued, running, done, failed, cancelled)
  SELECT job_id, COUNT(*), SUM(state = 1), SUM(state = 2), SUM(state = 3), SUM(state = 4), SUM(state = 5)
  FROM items GROUP BY job_id;
PRAGMA user_version = 1;
)sql";

absl::StatusOr<std::unique_ptr<Store>> SqliteStore::Open(const std::string& path) {
  ASSIGN_OR_RETURN(auto db, Database::Open(path));
  if (auto s = db->Exec(Schema()); !s.ok()) {
    return absl::DataLossError(absl::StrCat("database ", path, " is not a spriteforge store: ", s.message()));
  }
  // Databases made by earlier versions (PostgreSQL stores have none): columns added since,
  // and the per-field parameter columns converted to the messages (legacy_rows.h).
  if (auto s = AddMissingColumn(*db, "jobs", "owner", "TEXT NOT NULL DEFAULT ''"); !s.ok()) {
    return absl::DataLossError(absl::StrCat("database ", path, ": cannot add the owner column: ", s.message()));
  }
  if (auto s = AddMissingColumn(*db, "jobs", "preview_every", "INTEGER NOT NULL DEFAULT 0"); !s.ok()) {
    return absl::DataLossError(absl::StrCat("database ", path, ": cannot add the preview_every column: ", s.message()));
  }
  if (auto s = UpgradeLegacyRows(*db); !s.ok()) {
    return absl::DataLossError(absl::StrCat("database ", path, ": cannot convert its rows: ", s.message()));
  }
  int64_t version = 0;
  {
    Statement q(db->raw(), "PRAGMA user_version");
    if (q.Step()) version = q.Int(0);
  }
  if (version < 1) {
    if (auto s = db->Exec(absl::StrCat("BEGIN IMMEDIATE;", kCountExistingJobs, "COMMIT;")); !s.ok()) {
      return absl::DataLossError(absl::StrCat("database ", path, ": cannot count items per job: ", s.message()));
    }
  }
  return std::unique_ptr<Store>(new SqliteStore(std::move(db)));
}

absl::StatusOr<JobRecord> SqliteStore::InsertJob(JobRecord job, bool* deduplicated) {
  *deduplicated = false;
  if (!job.idempotency_key.empty()) {
    Statement q(*db_, absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE idempotency_key = ?").c_str());
    q.Bind(1, job.idempotency_key);
    if (q.Step()) {
      *deduplicated = true;
      return ReadJob(q);
    }
    if (!q.status().ok()) return q.status();
  }
  static const std::string insert = [] {
    std::string out = absl::StrCat("INSERT INTO jobs(", kJobInsertColumns, ") VALUES(");
    for (size_t i = 0; i < JobInsertValues(JobRecord{}).size(); ++i) out += i ? ",?" : "?";
    return out + ")";
  }();
  Statement ins(*db_, insert.c_str());
  int i = 1;
  for (const SqlValue& v : JobInsertValues(job)) ins.Bind(i++, v);
  RETURN_IF_ERROR(ins.Run());
  job.seq = sqlite3_last_insert_rowid(db_->raw());
  Statement counts(*db_, "INSERT INTO job_counts(job_id) VALUES(?)");
  counts.Bind(1, job.id);
  RETURN_IF_ERROR(counts.Run());
  return job;
}

absl::Status SqliteStore::InsertItems(const std::string& job_id, const std::vector<ItemRecord>& items) {
  static const std::string placeholders = [] {
    std::string out = absl::StrCat("INSERT INTO items(job_id, idx, state, ", ItemParamColumns(), ") VALUES(?,?,?");
    for (int i = 0; i < ItemParamColumnCount(); ++i) out += ",?";
    return out + ")";
  }();
  for (const ItemRecord& it : items) {
    Statement row(*db_, placeholders.c_str());
    row.Bind(1, job_id).Bind(2, it.index).Bind(3, static_cast<int>(ItemState::kQueued));
    int i = 4;
    for (const SqlValue& v : ItemParamValues(it)) row.Bind(i++, v);
    RETURN_IF_ERROR(row.Run());
  }
  Statement counts(*db_, "UPDATE job_counts SET total = total + ?, queued = queued + ? WHERE job_id = ?");
  counts.Bind(1, static_cast<int64_t>(items.size())).Bind(2, static_cast<int64_t>(items.size())).Bind(3, job_id);
  return counts.Run();
}

absl::StatusOr<JobRecord> SqliteStore::CreateJob(JobRecord job, const std::vector<ItemRecord>& items,
                                           bool* deduplicated) {
  Transaction tx(*db_);
  if (!tx.status().ok()) return tx.status();
  job.state = JobState::kQueued;
  auto stored = InsertJob(job, deduplicated);
  if (!stored.ok() || *deduplicated) return stored;
  RETURN_IF_ERROR(InsertItems(stored->id, items));
  RETURN_IF_ERROR(tx.Commit());
  return stored;
}

absl::StatusOr<JobRecord> SqliteStore::BeginJob(JobRecord job, bool* deduplicated) {
  Transaction tx(*db_);
  if (!tx.status().ok()) return tx.status();
  job.state = JobState::kLoading;
  auto stored = InsertJob(job, deduplicated);
  if (!stored.ok() || *deduplicated) return stored;
  RETURN_IF_ERROR(tx.Commit());
  return stored;
}

absl::Status SqliteStore::AddItems(const std::string& job_id, const std::vector<ItemRecord>& items) {
  Transaction tx(*db_);
  if (!tx.status().ok()) return tx.status();
  RETURN_IF_ERROR(InsertItems(job_id, items));
  return tx.Commit();
}

absl::Status SqliteStore::QueueJob(const std::string& job_id) {
  Statement q(*db_, "UPDATE jobs SET state = 1 WHERE id = ? AND state = 0");
  q.Bind(1, job_id);
  return q.Run();
}

absl::Status SqliteStore::DropLoadingJob(const std::string& job_id) {
  Transaction tx(*db_);
  if (!tx.status().ok()) return tx.status();
  for (const char* sql : {"DELETE FROM items WHERE job_id = ? AND (SELECT state FROM jobs WHERE id = ?) = 0",
                          "DELETE FROM job_counts WHERE job_id = ? AND (SELECT state FROM jobs WHERE id = ?) = 0",
                          "DELETE FROM jobs WHERE id = ? AND state = 0 AND ? <> ''"}) {
    Statement q(*db_, sql);
    q.Bind(1, job_id).Bind(2, job_id);
    RETURN_IF_ERROR(q.Run());
  }
  return tx.Commit();
}

absl::StatusOr<JobRecord> SqliteStore::GetJob(const std::string& id) {
  Statement q(*db_, absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE id = ?").c_str());
  q.Bind(1, id);
  if (q.Step()) return ReadJob(q);
  if (!q.status().ok()) return q.status();
  return absl::NotFoundError(absl::StrCat("no job ", id));
}

absl::StatusOr<std::vector<JobRecord>> SqliteStore::ListJobs(int limit, const std::optional<std::string>& owner) {
  Statement q(*db_, absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE state <> 0 ", owner ? "AND owner = ? " : "",
                                 "ORDER BY seq DESC LIMIT ?")
                        .c_str());
  if (owner) q.Bind(1, *owner);
  q.Bind(owner ? 2 : 1, limit);
  std::vector<JobRecord> out;
  while (q.Step()) out.push_back(ReadJob(q));
  if (!q.status().ok()) return q.status();
  return out;
}

absl::StatusOr<std::vector<JobRecord>> SqliteStore::UnfinishedJobs() {
  Statement q(db_->raw(), absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE finished_ms = 0 ORDER BY seq").c_str());
  std::vector<JobRecord> out;
  while (q.Step()) out.push_back(ReadJob(q));
  if (!q.status().ok()) return q.status();
  return out;
}

absl::StatusOr<Backlog> SqliteStore::OwnerBacklog(const std::string& owner) {
  Statement q(db_->raw(),
              "SELECT COUNT(*), COALESCE(SUM((SELECT COUNT(*) FROM items WHERE items.job_id = jobs.id "
              "AND items.state IN (1, 2))), 0) FROM jobs WHERE owner = ? AND finished_ms = 0");
  q.Bind(1, owner);
  Backlog out;
  if (q.Step()) out = {q.Int(0), q.Int(1)};
  if (!q.status().ok()) return q.status();
  return out;
}

absl::StatusOr<std::vector<ItemRecord>> SqliteStore::SelectItems(const char* where, const std::string& arg) {
  Statement q(*db_, absl::StrCat("SELECT ", ItemColumns(), " FROM items ", where).c_str());
  if (!arg.empty()) q.Bind(1, arg);
  std::vector<ItemRecord> out;
  while (q.Step()) out.push_back(ReadItem(q));
  if (!q.status().ok()) return q.status();
  return out;
}

absl::StatusOr<std::vector<ItemRecord>> SqliteStore::Items(const std::string& job_id) {
  return SelectItems("WHERE job_id = ? ORDER BY idx", job_id);
}

absl::StatusOr<ItemCounts> SqliteStore::Counts(const std::string& job_id) {
  Statement q(*db_, "SELECT total, queued, running, done, failed, cancelled FROM job_counts WHERE job_id = ?");
  q.Bind(1, job_id);
  ItemCounts c;
  if (q.Step()) {
    c.total = static_cast<int>(q.Int(0));
    c.queued = static_cast<int>(q.Int(1));
    c.running = static_cast<int>(q.Int(2));
    c.done = static_cast<int>(q.Int(3));
    c.failed = static_cast<int>(q.Int(4));
    c.cancelled = static_cast<int>(q.Int(5));
  }
  if (!q.status().ok()) return q.status();
  return c;
}

absl::StatusOr<std::vector<ItemRecord>> SqliteStore::QueuedItems() {
  return SelectItems("WHERE state = 1 ORDER BY (SELECT seq FROM jobs WHERE jobs.id = items.job_id), idx", "");
}

absl::StatusOr<std::vector<ItemRecord>> SqliteStore::QueuedItems(const std::string& job_id, int after, int limit) {
  Statement q(*db_, absl::StrCat("SELECT ", ItemColumns(),
                                 " FROM items WHERE job_id = ? AND state = 1 AND idx > ? ORDER BY idx LIMIT ?")
                        .c_str());
  q.Bind(1, job_id).Bind(2, after).Bind(3, limit);
  std::vector<ItemRecord> out;
  while (q.Step()) out.push_back(ReadItem(q));
  if (!q.status().ok()) return q.status();
  return out;
}

absl::Status SqliteStore::Lease(const std::string& batch_id, const std::string& worker_id,
                          const std::vector<ItemKey>& items, int64_t expires_ms, int64_t now_ms) {
  Transaction tx(*db_);
  if (!tx.status().ok()) return tx.status();
  Statement lease(*db_, "INSERT INTO leases(batch_id, worker_id, expires_ms) VALUES(?,?,?)");
  lease.Bind(1, batch_id).Bind(2, worker_id).Bind(3, expires_ms);
  RETURN_IF_ERROR(lease.Run());
  for (size_t i = 0; i < items.size(); ++i) {
    const ItemKey& key = items[i];
    Statement up(*db_,
                 "UPDATE items SET state = 2, batch_id = ?, worker_id = ?, attempts = attempts + 1 "
                 "WHERE job_id = ? AND idx = ? AND state = 1");
    up.Bind(1, batch_id).Bind(2, worker_id).Bind(3, key.job_id).Bind(4, key.index);
    RETURN_IF_ERROR(up.Run());
    if (db_->Changes() != 1) {
      return absl::FailedPreconditionError(absl::StrCat("item ", key.job_id, "/", key.index, " is not queued"));
    }
    if (i > 0 && items[i - 1].job_id == key.job_id) continue;  // the job is started already
    Statement job(*db_, "UPDATE jobs SET state = 2, started_ms = ? WHERE id = ? AND state = 1");
    job.Bind(1, now_ms).Bind(2, key.job_id);
    RETURN_IF_ERROR(job.Run());
  }
  return tx.Commit();
}

absl::Status SqliteStore::RenewLeases(const std::string& worker_id, int64_t expires_ms) {
  Statement q(*db_, "UPDATE leases SET expires_ms = ? WHERE worker_id = ?");
  q.Bind(1, expires_ms).Bind(2, worker_id);
  return q.Run();
}

absl::StatusOr<std::vector<std::string>> SqliteStore::ExpiredBatches(int64_t now_ms) {
  Statement q(*db_, "SELECT batch_id FROM leases WHERE expires_ms < ?");
  q.Bind(1, now_ms);
  std::vector<std::string> out;
  while (q.Step()) out.push_back(q.Text(0));
  if (!q.status().ok()) return q.status();
  return out;
}

absl::StatusOr<std::vector<std::string>> SqliteStore::BatchesOfWorker(const std::string& worker_id) {
  Statement q(*db_, "SELECT batch_id FROM leases WHERE worker_id = ?");
  q.Bind(1, worker_id);
  std::vector<std::string> out;
  while (q.Step()) out.push_back(q.Text(0));
  if (!q.status().ok()) return q.status();
  return out;
}

absl::StatusOr<std::vector<ItemRecord>> SqliteStore::RunningItems(const std::string& batch_id) {
  return SelectItems("WHERE batch_id = ? AND state = 2 ORDER BY job_id, idx", batch_id);
}

absl::StatusOr<bool> SqliteStore::CompleteItem(const std::string& batch_id, const ItemKey& item,
                                         const std::string& image_path, const std::string& sprite_path,
                                         int64_t now_ms) {
  Transaction tx(*db_);
  if (!tx.status().ok()) return tx.status();
  Statement q(*db_,
              "UPDATE items SET state = 3, image_path = ?, sprite_path = ?, done_ms = ? "
              "WHERE job_id = ? AND idx = ? AND state = 2 AND batch_id = ?");
  q.Bind(1, image_path).Bind(2, sprite_path).Bind(3, now_ms).Bind(4, item.job_id).Bind(5, item.index)
      .Bind(6, batch_id);
  RETURN_IF_ERROR(q.Run());
  const bool accepted = db_->Changes() == 1;
  RETURN_IF_ERROR(tx.Commit());
  return accepted;
}

absl::StatusOr<std::vector<bool>> SqliteStore::CompleteItems(const std::vector<Completion>& done, int64_t now_ms) {
  Transaction tx(*db_);
  if (!tx.status().ok()) return tx.status();
  std::vector<bool> accepted;
  accepted.reserve(done.size());
  for (const Completion& c : done) {
    Statement q(*db_,
                "UPDATE items SET state = 3, image_path = ?, sprite_path = ?, done_ms = ? "
                "WHERE job_id = ? AND idx = ? AND state = 2 AND batch_id = ?");
    q.Bind(1, c.image_path).Bind(2, c.sprite_path).Bind(3, now_ms).Bind(4, c.item.job_id).Bind(5, c.item.index)
        .Bind(6, c.batch_id);
    RETURN_IF_ERROR(q.Run());
    accepted.push_back(db_->Changes() == 1);
  }
  RETURN_IF_ERROR(tx.Commit());
  return accepted;
}

absl::StatusOr<std::vector<ItemRecord>> SqliteStore::ReleaseBatch(
    const std::string& batch_id, int fail_reason, const std::string& message, int max_attempts,
    const std::map<std::pair<std::string, int>, std::string>& item_messages) {
  Transaction tx(*db_);
  if (!tx.status().ok()) return tx.status();
  auto items = RunningItems(batch_id);
  if (!items.ok()) return items.status();
  for (ItemRecord& it : *items) {
    it.state = ReleasedItemState(fail_reason, it.attempts, max_attempts);
    it.failure = fail_reason;
    auto own = item_messages.find({it.job_id, it.index});
    it.failure_message = own == item_messages.end() ? message : own->second;
    Statement up(*db_,
                 "UPDATE items SET state = ?, failure = ?, failure_message = ?, batch_id = '' "
                 "WHERE job_id = ? AND idx = ?");
    up.Bind(1, static_cast<int>(it.state)).Bind(2, fail_reason).Bind(3, it.failure_message).Bind(4, it.job_id)
        .Bind(5, it.index);
    RETURN_IF_ERROR(up.Run());
  }
  Statement del(*db_, "DELETE FROM leases WHERE batch_id = ?");
  del.Bind(1, batch_id);
  RETURN_IF_ERROR(del.Run());
  RETURN_IF_ERROR(tx.Commit());
  return items;
}

absl::StatusOr<std::vector<ItemRecord>> SqliteStore::FailQueuedItems(const std::string& job_id, int reason,
                                                               const std::string& message) {
  Transaction tx(*db_);
  if (!tx.status().ok()) return tx.status();
  auto items = SelectItems("WHERE job_id = ? AND state = 1 ORDER BY idx", job_id);
  if (!items.ok()) return items.status();
  Statement up(db_->raw(), "UPDATE items SET state = 4, failure = ?, failure_message = ? WHERE job_id = ? AND state = 1");
  up.Bind(1, reason).Bind(2, message).Bind(3, job_id);
  RETURN_IF_ERROR(up.Run());
  RETURN_IF_ERROR(tx.Commit());
  for (ItemRecord& it : *items) {
    it.state = ItemState::kFailed;
    it.failure = reason;
    it.failure_message = message;
  }
  return items;
}

absl::StatusOr<std::vector<std::string>> SqliteStore::CancelJob(const std::string& job_id, int64_t now_ms) {
  Transaction tx(*db_);
  if (!tx.status().ok()) return tx.status();
  ASSIGN_OR_RETURN(auto job, GetJob(job_id));
  std::vector<std::string> batches;
  Statement q(*db_, "SELECT DISTINCT batch_id FROM items WHERE job_id = ? AND state = 2");
  q.Bind(1, job_id);
  while (q.Step()) batches.push_back(q.Text(0));
  if (!q.status().ok()) return q.status();
  Statement items(*db_, "UPDATE items SET state = 5, batch_id = '' WHERE job_id = ? AND state IN (1, 2)");
  items.Bind(1, job_id);
  RETURN_IF_ERROR(items.Run());
  if (job.finished_ms == 0) {
    Statement j(*db_, "UPDATE jobs SET state = 5, finished_ms = ? WHERE id = ?");
    j.Bind(1, now_ms).Bind(2, job_id);
    RETURN_IF_ERROR(j.Run());
  }
  RETURN_IF_ERROR(tx.Commit());
  return batches;
}

absl::StatusOr<JobRecord> SqliteStore::FinishJobIfComplete(const std::string& job_id, int64_t now_ms) {
  ASSIGN_OR_RETURN(auto counts, Counts(job_id));
  if (counts.Finished()) {
    const JobState state = FinishedJobState(counts);
    Statement q(*db_, "UPDATE jobs SET state = ?, finished_ms = ? WHERE id = ? AND finished_ms = 0");
    q.Bind(1, static_cast<int>(state)).Bind(2, now_ms).Bind(3, job_id);
    RETURN_IF_ERROR(q.Run());
  }
  return GetJob(job_id);
}

absl::StatusOr<int> SqliteStore::Recover() {
  Transaction tx(*db_);
  if (!tx.status().ok()) return tx.status();
  RETURN_IF_ERROR(db_->Exec("UPDATE items SET state = 1, batch_id = '' WHERE state = 2"));
  const int n = static_cast<int>(db_->Changes());
  RETURN_IF_ERROR(db_->Exec("DELETE FROM leases"));
  // A submission cut short never answered its client, who submits again.
  if (auto s = db_->Exec("DELETE FROM items WHERE job_id IN (SELECT id FROM jobs WHERE state = 0);"
                         "DELETE FROM job_counts WHERE job_id IN (SELECT id FROM jobs WHERE state = 0);"
                         "DELETE FROM jobs WHERE state = 0");
      !s.ok()) {
    return s;
  }
  RETURN_IF_ERROR(tx.Commit());
  return n;
}

absl::Status SqliteStore::UpsertWorker(const WorkerRecord& w) {
  Statement q(*db_,
              "INSERT INTO workers(id, info, last_seen_ms) VALUES(?,?,?) "
              "ON CONFLICT(id) DO UPDATE SET info = excluded.info, last_seen_ms = excluded.last_seen_ms");
  q.Bind(1, w.id).Bind(2, w.info_json).Bind(3, w.last_seen_ms);
  return q.Run();
}

absl::Status SqliteStore::AddWorkerImages(const std::string& worker_id, int64_t images, int64_t now_ms) {
  Statement q(*db_, "UPDATE workers SET images_done = images_done + ?, last_seen_ms = ? WHERE id = ?");
  q.Bind(1, images).Bind(2, now_ms).Bind(3, worker_id);
  return q.Run();
}

absl::StatusOr<std::vector<WorkerRecord>> SqliteStore::ListWorkers() {
  Statement q(*db_, "SELECT id, info, last_seen_ms, images_done FROM workers ORDER BY id");
  std::vector<WorkerRecord> out;
  while (q.Step()) out.push_back({q.Text(0), q.Text(1), q.Int(2), q.Int(3)});
  if (!q.status().ok()) return q.status();
  return out;
}

absl::StatusOr<std::map<std::string, int64_t>> SqliteStore::Totals() {
  Statement q(*db_,
              "SELECT COALESCE(SUM(queued), 0), COALESCE(SUM(running), 0), COALESCE(SUM(done), 0), "
              "COALESCE(SUM(failed), 0), COALESCE(SUM(cancelled), 0) FROM job_counts");
  std::map<std::string, int64_t> out{{"done", 0}, {"failed", 0}, {"queued", 0}, {"running", 0}, {"cancelled", 0}};
  if (q.Step()) {
    out["queued"] = q.Int(0);
    out["running"] = q.Int(1);
    out["done"] = q.Int(2);
    out["failed"] = q.Int(3);
    out["cancelled"] = q.Int(4);
  }
  if (!q.status().ok()) return q.status();
  return out;
}

absl::StatusOr<LeaderLease> SqliteStore::ReadLeader() {
  Statement q(*db_,
              "SELECT holder, address, expires_ms, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) FROM leader WHERE id = 1");
  LeaderLease out;
  if (q.Step()) out = {q.Text(0), q.Text(1), q.Int(2), q.Int(3)};
  if (!q.status().ok()) return q.status();
  return out;
}

absl::StatusOr<bool> SqliteStore::ClaimLeader(const LeaderLease& seen, const std::string& holder,
                                              const std::string& address, int64_t lease_ms) {
  Statement q(*db_,
              "UPDATE leader SET holder = ?, address = ?, "
              "expires_ms = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) + ? "
              "WHERE id = 1 AND holder = ? AND expires_ms = ?");
  q.Bind(1, holder).Bind(2, address).Bind(3, lease_ms).Bind(4, seen.holder).Bind(5, seen.expires_ms);
  RETURN_IF_ERROR(q.Run());
  return db_->Changes() == 1;
}

}  // namespace spriteforge::coordinator
