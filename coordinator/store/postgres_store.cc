#include "coordinator/store/postgres_store.h"

#include <algorithm>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "coordinator/store/postgres.h"
#include "coordinator/store/rules.h"

namespace spriteforge::coordinator {
namespace {

// Two coordinators starting at once would race to create the schema; the first takes
// this lock (any constant; it names the schema) and the second finds the tables made.
constexpr const char* kSchemaLock = "SELECT pg_advisory_xact_lock(7163022)";

constexpr const char* kSchemaHead = R"sql(
CREATE TABLE IF NOT EXISTS jobs(
  seq BIGSERIAL PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  model TEXT NOT NULL,
  priority INTEGER NOT NULL,
  state INTEGER NOT NULL,
  created_ms BIGINT NOT NULL,
  started_ms BIGINT NOT NULL DEFAULT 0,
  finished_ms BIGINT NOT NULL DEFAULT 0,
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
  done_ms BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY(job_id, idx));
CREATE INDEX IF NOT EXISTS items_queue ON items(job_id, state, idx);
CREATE INDEX IF NOT EXISTS items_batch ON items(batch_id);
CREATE TABLE IF NOT EXISTS leases(
  batch_id TEXT PRIMARY KEY,
  worker_id TEXT NOT NULL,
  expires_ms BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS leases_worker ON leases(worker_id);
-- Items per state of each job, kept by a trigger in the same transaction as every change.
CREATE TABLE IF NOT EXISTS job_counts(
  job_id TEXT PRIMARY KEY,
  total BIGINT NOT NULL DEFAULT 0,
  queued BIGINT NOT NULL DEFAULT 0,
  running BIGINT NOT NULL DEFAULT 0,
  done BIGINT NOT NULL DEFAULT 0,
  failed BIGINT NOT NULL DEFAULT 0,
  cancelled BIGINT NOT NULL DEFAULT 0);
CREATE OR REPLACE FUNCTION spriteforge_count_states() RETURNS trigger AS $$
BEGIN
  UPDATE job_counts SET
    queued = queued + (NEW.state = 1)::int - (OLD.state = 1)::int,
    running = running + (NEW.state = 2)::int - (OLD.state = 2)::int,
    done = done + (NEW.state = 3)::int - (OLD.state = 3)::int,
    failed = failed + (NEW.state = 4)::int - (OLD.state = 4)::int,
    cancelled = cancelled + (NEW.state = 5)::int - (OLD.state = 5)::int
  WHERE job_id = NEW.job_id;
  RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE OR REPLACE TRIGGER items_count_states AFTER UPDATE OF state ON items
  FOR EACH ROW WHEN (OLD.state <> NEW.state) EXECUTE FUNCTION spriteforge_count_states();
CREATE TABLE IF NOT EXISTS workers(
  id TEXT PRIMARY KEY,
  info TEXT NOT NULL,
  last_seen_ms BIGINT NOT NULL,
  images_done BIGINT NOT NULL DEFAULT 0);
-- Who leads the coordinators sharing this database (one row).
CREATE TABLE IF NOT EXISTS leader(
  id INTEGER PRIMARY KEY CHECK (id = 1),
  holder TEXT NOT NULL,
  address TEXT NOT NULL,
  expires_ms BIGINT NOT NULL);
INSERT INTO leader(id, holder, address, expires_ms) VALUES(1, '', '', 0) ON CONFLICT DO NOTHING;
)sql";

// The database's clock in milliseconds since the epoch.
constexpr const char* kNowMs = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

// Rows per multi-row INSERT of items: far below PostgreSQL's 65535 parameters.
constexpr size_t kInsertRows = 500;

// PostgreSQL's array literals, for "$n::int[]" and "$n::text[]".
std::string IntArray(const std::vector<int>& values) { return absl::StrCat("{", absl::StrJoin(values, ","), "}"); }
std::string TextArray(const std::vector<std::string>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) out += ',';
    out += '"';
    for (char c : values[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

// One statement, so one round trip and atomic by itself: lock the batch's queued items,
// skipping rows another transaction holds, and only if every item was locked, mark them
// running, record the lease and start their jobs. Answers whether it leased, and the items
// it could not lock.
constexpr const char* kLeaseSql = R"sql(
WITH want AS (SELECT unnest($4::text[]) AS job_id, unnest($5::int[]) AS idx),
locked AS (SELECT i.job_id, i.idx FROM items i JOIN want w ON i.job_id = w.job_id AND i.idx = w.idx
           WHERE i.state = 1 FOR UPDATE OF i SKIP LOCKED),
ok AS (SELECT (SELECT count(*) FROM locked) = $6 AS leased),
taken AS (UPDATE items i SET state = 2, batch_id = $1, worker_id = $2, attempts = i.attempts + 1
          FROM locked l, ok WHERE ok.leased AND i.job_id = l.job_id AND i.idx = l.idx RETURNING 1),
lease AS (INSERT INTO leases(batch_id, worker_id, expires_ms) SELECT $1, $2, $3 FROM ok WHERE ok.leased RETURNING 1),
started AS (UPDATE jobs SET state = 2, started_ms = $7 FROM ok
            WHERE ok.leased AND jobs.state = 1 AND jobs.id IN (SELECT job_id FROM want) RETURNING 1)
SELECT ok.leased,
       (SELECT string_agg(w.job_id || '/' || w.idx, ', ') FROM want w
        WHERE NOT EXISTS (SELECT 1 FROM locked l WHERE l.job_id = w.job_id AND l.idx = w.idx))
FROM ok
)sql";

// A group of results in one statement: each row of the arrays is accepted when its item
// still runs under its batch.
constexpr const char* kCompleteSql = R"sql(
UPDATE items i SET state = 3, image_path = d.image, sprite_path = d.sprite, done_ms = $1
FROM unnest($2::text[], $3::int[], $4::text[], $5::text[], $6::text[]) AS d(job_id, idx, batch_id, image, sprite)
WHERE i.job_id = d.job_id AND i.idx = d.idx AND i.state = 2 AND i.batch_id = d.batch_id
RETURNING i.job_id, i.idx, d.batch_id
)sql";

absl::Status ExpectOk(const absl::StatusOr<PgResult>& r) { return r.ok() ? absl::OkStatus() : r.status(); }

}  // namespace

PostgresStore::PostgresStore(std::unique_ptr<PgConnection> db) : db_(std::move(db)) {}
PostgresStore::~PostgresStore() = default;

absl::StatusOr<std::unique_ptr<Store>> PostgresStore::Open(const std::string& url) {
  ASSIGN_OR_RETURN(auto db, PgConnection::Open(url));
  // The same bargain as SQLite's WAL with synchronous=NORMAL: a commit does not wait for
  // the disk, so a crash of the database server (not of a coordinator) may lose the last
  // fraction of a second of commits, whose items then run again; the database stays
  // consistent. Waiting would cost one disk flush per lease renewal and per result group.
  // A URL that sets synchronous_commit itself (options=-csynchronous_commit%3Don) keeps it.
  if (url.find("synchronous_commit") == std::string::npos) {
    RETURN_IF_ERROR(db->SetSessionSql("SET synchronous_commit = off"));
  }
  const std::string schema =
      absl::StrCat("BEGIN;", kSchemaLock, ";", kSchemaHead, JobSettingColumnDefinitions(SqlDialect::kPostgres),
                   kSchemaItems, ItemParamColumnDefinitions(SqlDialect::kPostgres), kSchemaTail, "COMMIT;");
  if (auto s = db->Exec(schema); !s.ok()) {
    db->Exec("ROLLBACK").IgnoreError();
    return absl::DataLossError(absl::StrCat("database ", db->name(), " is not a spriteforge store: ", s.message()));
  }
  return std::unique_ptr<Store>(new PostgresStore(std::move(db)));
}

absl::StatusOr<std::vector<JobRecord>> PostgresStore::SelectJobs(const std::string& where,
                                                                 const std::vector<SqlValue>& args) {
  ASSIGN_OR_RETURN(auto r, db_->Query(absl::StrCat("SELECT ", kJobColumns, " FROM jobs ", where), args));
  std::vector<JobRecord> out;
  while (r.Next()) out.push_back(ReadJob(r));
  return out;
}

absl::StatusOr<std::vector<ItemRecord>> PostgresStore::SelectItems(const std::string& where,
                                                                   const std::vector<SqlValue>& args) {
  ASSIGN_OR_RETURN(auto r, db_->Query(absl::StrCat("SELECT ", ItemColumns(), " FROM items ", where), args));
  std::vector<ItemRecord> out;
  out.reserve(r.rows());
  while (r.Next()) out.push_back(ReadItem(r));
  return out;
}

absl::StatusOr<JobRecord> PostgresStore::InsertJob(JobRecord job, bool* deduplicated) {
  *deduplicated = false;
  if (!job.idempotency_key.empty()) {
    ASSIGN_OR_RETURN(auto found, SelectJobs("WHERE idempotency_key = $1", {job.idempotency_key}));
    if (!found.empty()) {
      *deduplicated = true;
      return found.front();
    }
  }
  static const std::string insert = [] {
    std::string out = absl::StrCat("INSERT INTO jobs(", kJobInsertColumns, ") VALUES(");
    for (size_t i = 0; i < JobInsertValues(JobRecord{}).size(); ++i) absl::StrAppend(&out, i ? "," : "", "$", i + 1);
    return out + ") RETURNING seq";
  }();
  ASSIGN_OR_RETURN(auto ins, db_->Query(insert, JobInsertValues(job)));
  if (ins.Next()) job.seq = ins.Int(0);
  RETURN_IF_ERROR(ExpectOk(db_->Query("INSERT INTO job_counts(job_id) VALUES($1)", {job.id})));
  return job;
}

absl::Status PostgresStore::InsertItems(const std::string& job_id, const std::vector<ItemRecord>& items) {
  const int per_row = 3 + ItemParamColumnCount();
  for (size_t start = 0; start < items.size(); start += kInsertRows) {
    const size_t n = std::min(kInsertRows, items.size() - start);
    std::string sql = absl::StrCat("INSERT INTO items(job_id, idx, state, ", ItemParamColumns(), ") VALUES");
    std::vector<SqlValue> args;
    args.reserve(n * per_row);
    for (size_t r = 0; r < n; ++r) {
      const ItemRecord& it = items[start + r];
      absl::StrAppend(&sql, r ? "," : "", "(");
      for (int c = 0; c < per_row; ++c) absl::StrAppend(&sql, c ? "," : "", "$", r * per_row + c + 1);
      sql += ")";
      args.push_back(job_id);
      args.push_back(int64_t{it.index});
      args.push_back(int64_t{static_cast<int>(ItemState::kQueued)});
      for (SqlValue& v : ItemParamValues(it)) args.push_back(std::move(v));
    }
    RETURN_IF_ERROR(ExpectOk(db_->Query(sql, args, /*prepare=*/false)));
  }
  const int64_t n = static_cast<int64_t>(items.size());
  return ExpectOk(db_->Query("UPDATE job_counts SET total = total + $1, queued = queued + $2 WHERE job_id = $3",
                             {n, n, job_id}));
}

absl::StatusOr<JobRecord> PostgresStore::CreateJob(JobRecord job, const std::vector<ItemRecord>& items,
                                                   bool* deduplicated) {
  PgTransaction tx(*db_);
  if (!tx.status().ok()) return tx.status();
  job.state = JobState::kQueued;
  auto stored = InsertJob(job, deduplicated);
  if (!stored.ok() || *deduplicated) return stored;
  RETURN_IF_ERROR(InsertItems(stored->id, items));
  RETURN_IF_ERROR(tx.Commit());
  return stored;
}

absl::StatusOr<JobRecord> PostgresStore::BeginJob(JobRecord job, bool* deduplicated) {
  PgTransaction tx(*db_);
  if (!tx.status().ok()) return tx.status();
  job.state = JobState::kLoading;
  auto stored = InsertJob(job, deduplicated);
  if (!stored.ok() || *deduplicated) return stored;
  RETURN_IF_ERROR(tx.Commit());
  return stored;
}

absl::Status PostgresStore::AddItems(const std::string& job_id, const std::vector<ItemRecord>& items) {
  PgTransaction tx(*db_);
  if (!tx.status().ok()) return tx.status();
  RETURN_IF_ERROR(InsertItems(job_id, items));
  return tx.Commit();
}

absl::Status PostgresStore::QueueJob(const std::string& job_id) {
  return ExpectOk(db_->Query("UPDATE jobs SET state = 1 WHERE id = $1 AND state = 0", {job_id}));
}

absl::Status PostgresStore::DropLoadingJob(const std::string& job_id) {
  PgTransaction tx(*db_);
  if (!tx.status().ok()) return tx.status();
  for (const char* sql : {"DELETE FROM items WHERE job_id = $1 AND (SELECT state FROM jobs WHERE id = $1) = 0",
                          "DELETE FROM job_counts WHERE job_id = $1 AND (SELECT state FROM jobs WHERE id = $1) = 0",
                          "DELETE FROM jobs WHERE id = $1 AND state = 0 AND $1 <> ''"}) {
    RETURN_IF_ERROR(ExpectOk(db_->Query(sql, {job_id})));
  }
  return tx.Commit();
}

absl::StatusOr<JobRecord> PostgresStore::GetJob(const std::string& id) {
  ASSIGN_OR_RETURN(auto jobs, SelectJobs("WHERE id = $1", {id}));
  if (jobs.empty()) return absl::NotFoundError(absl::StrCat("no job ", id));
  return jobs.front();
}

absl::StatusOr<std::vector<JobRecord>> PostgresStore::ListJobs(int limit, const std::optional<std::string>& owner) {
  if (owner) return SelectJobs("WHERE state <> 0 AND owner = $1 ORDER BY seq DESC LIMIT $2", {*owner, int64_t{limit}});
  return SelectJobs("WHERE state <> 0 ORDER BY seq DESC LIMIT $1", {int64_t{limit}});
}

absl::StatusOr<std::vector<JobRecord>> PostgresStore::UnfinishedJobs() {
  return SelectJobs("WHERE finished_ms = 0 ORDER BY seq", {});
}

absl::StatusOr<Backlog> PostgresStore::OwnerBacklog(const std::string& owner) {
  ASSIGN_OR_RETURN(auto r, db_->Query(
      "SELECT COUNT(*), COALESCE(SUM((SELECT COUNT(*) FROM items WHERE items.job_id = jobs.id "
      "AND items.state IN (1, 2))), 0) FROM jobs WHERE owner = $1 AND finished_ms = 0",
      {owner}));
  Backlog out;
  if (r.Next()) out = {r.Int(0), r.Int(1)};
  return out;
}

absl::StatusOr<std::vector<ItemRecord>> PostgresStore::Items(const std::string& job_id) {
  return SelectItems("WHERE job_id = $1 ORDER BY idx", {job_id});
}

absl::StatusOr<ItemCounts> PostgresStore::Counts(const std::string& job_id) {
  ASSIGN_OR_RETURN(auto r, db_->Query("SELECT total, queued, running, done, failed, cancelled FROM job_counts WHERE job_id = $1",
                      {job_id}));
  ItemCounts c;
  if (r.Next()) {
    c.total = static_cast<int>(r.Int(0));
    c.queued = static_cast<int>(r.Int(1));
    c.running = static_cast<int>(r.Int(2));
    c.done = static_cast<int>(r.Int(3));
    c.failed = static_cast<int>(r.Int(4));
    c.cancelled = static_cast<int>(r.Int(5));
  }
  return c;
}

absl::StatusOr<std::vector<ItemRecord>> PostgresStore::QueuedItems() {
  return SelectItems("WHERE state = 1 ORDER BY (SELECT seq FROM jobs WHERE jobs.id = items.job_id), idx", {});
}

absl::StatusOr<std::vector<ItemRecord>> PostgresStore::QueuedItems(const std::string& job_id, int after, int limit) {
  return SelectItems("WHERE job_id = $1 AND state = 1 AND idx > $2 ORDER BY idx LIMIT $3",
                     {job_id, int64_t{after}, int64_t{limit}});
}

absl::Status PostgresStore::Lease(const std::string& batch_id, const std::string& worker_id,
                                  const std::vector<ItemKey>& items, int64_t expires_ms, int64_t now_ms) {
  std::vector<std::string> jobs;
  std::vector<int> indexes;
  for (const ItemKey& key : items) {
    jobs.push_back(key.job_id);
    indexes.push_back(key.index);
  }
  ASSIGN_OR_RETURN(auto r, db_->Query(kLeaseSql, {batch_id, worker_id, expires_ms, TextArray(jobs), IntArray(indexes),
                                  static_cast<int64_t>(items.size()), now_ms}));
  if (!r.Next()) return absl::InternalError("lease: no answer");
  if (r.Text(0) != "t") {
    // Not queued, or held by another transaction at this moment.
    return absl::FailedPreconditionError(absl::StrCat("item ", r.Text(1), " is not queued"));
  }
  return absl::OkStatus();
}

absl::Status PostgresStore::RenewLeases(const std::string& worker_id, int64_t expires_ms) {
  return ExpectOk(db_->Query("UPDATE leases SET expires_ms = $1 WHERE worker_id = $2", {expires_ms, worker_id}));
}

absl::StatusOr<std::vector<std::string>> PostgresStore::ExpiredBatches(int64_t now_ms) {
  ASSIGN_OR_RETURN(auto r, db_->Query("SELECT batch_id FROM leases WHERE expires_ms < $1", {now_ms}));
  std::vector<std::string> out;
  while (r.Next()) out.push_back(r.Text(0));
  return out;
}

absl::StatusOr<std::vector<std::string>> PostgresStore::BatchesOfWorker(const std::string& worker_id) {
  ASSIGN_OR_RETURN(auto r, db_->Query("SELECT batch_id FROM leases WHERE worker_id = $1", {worker_id}));
  std::vector<std::string> out;
  while (r.Next()) out.push_back(r.Text(0));
  return out;
}

absl::StatusOr<std::vector<ItemRecord>> PostgresStore::RunningItems(const std::string& batch_id) {
  return SelectItems("WHERE batch_id = $1 AND state = 2 ORDER BY job_id, idx", {batch_id});
}

absl::StatusOr<bool> PostgresStore::CompleteItem(const std::string& batch_id, const ItemKey& item,
                                                 const std::string& image_path, const std::string& sprite_path,
                                                 int64_t now_ms) {
  ASSIGN_OR_RETURN(auto done, CompleteItems({{batch_id, item, image_path, sprite_path}}, now_ms));
  return done.front();
}

absl::StatusOr<std::vector<bool>> PostgresStore::CompleteItems(const std::vector<Completion>& done, int64_t now_ms) {
  if (done.empty()) return std::vector<bool>{};
  std::vector<std::string> jobs, batches, images, sprites;
  std::vector<int> indexes;
  for (const Completion& c : done) {
    jobs.push_back(c.item.job_id);
    indexes.push_back(c.item.index);
    batches.push_back(c.batch_id);
    images.push_back(c.image_path);
    sprites.push_back(c.sprite_path);
  }
  ASSIGN_OR_RETURN(auto r, db_->Query(kCompleteSql, {now_ms, TextArray(jobs), IntArray(indexes), TextArray(batches), TextArray(images),
                                     TextArray(sprites)}));
  std::set<std::tuple<std::string, int, std::string>> updated;
  while (r.Next()) updated.insert({r.Text(0), static_cast<int>(r.Int(1)), r.Text(2)});
  // A result listed twice counts once, as the first.
  std::vector<bool> accepted;
  accepted.reserve(done.size());
  for (const Completion& c : done) accepted.push_back(updated.erase({c.item.job_id, c.item.index, c.batch_id}) > 0);
  return accepted;
}

absl::StatusOr<std::vector<ItemRecord>> PostgresStore::ReleaseBatch(
    const std::string& batch_id, int fail_reason, const std::string& message, int max_attempts,
    const std::map<std::pair<std::string, int>, std::string>& item_messages) {
  PgTransaction tx(*db_);
  if (!tx.status().ok()) return tx.status();
  auto items = SelectItems("WHERE batch_id = $1 AND state = 2 ORDER BY job_id, idx FOR UPDATE", {batch_id});
  if (!items.ok()) return items.status();
  for (ItemRecord& it : *items) {
    it.state = ReleasedItemState(fail_reason, it.attempts, max_attempts);
    it.failure = fail_reason;
    auto own = item_messages.find({it.job_id, it.index});
    it.failure_message = own == item_messages.end() ? message : own->second;
    if (auto s = ExpectOk(db_->Query("UPDATE items SET state = $1, failure = $2, failure_message = $3, batch_id = '' "
                                     "WHERE job_id = $4 AND idx = $5",
                                     {int64_t{static_cast<int>(it.state)}, int64_t{fail_reason}, it.failure_message,
                                      it.job_id, int64_t{it.index}}));
        !s.ok()) {
      return s;
    }
  }
  RETURN_IF_ERROR(ExpectOk(db_->Query("DELETE FROM leases WHERE batch_id = $1", {batch_id})));
  RETURN_IF_ERROR(tx.Commit());
  return items;
}

absl::StatusOr<std::vector<ItemRecord>> PostgresStore::FailQueuedItems(const std::string& job_id, int reason,
                                                                       const std::string& message) {
  PgTransaction tx(*db_);
  if (!tx.status().ok()) return tx.status();
  auto items = SelectItems("WHERE job_id = $1 AND state = 1 ORDER BY idx FOR UPDATE", {job_id});
  if (!items.ok()) return items.status();
  if (auto s = ExpectOk(db_->Query("UPDATE items SET state = 4, failure = $1, failure_message = $2 "
                                   "WHERE job_id = $3 AND state = 1",
                                   {int64_t{reason}, message, job_id}));
      !s.ok()) {
    return s;
  }
  RETURN_IF_ERROR(tx.Commit());
  for (ItemRecord& it : *items) {
    it.state = ItemState::kFailed;
    it.failure = reason;
    it.failure_message = message;
  }
  return items;
}

absl::StatusOr<std::vector<std::string>> PostgresStore::CancelJob(const std::string& job_id, int64_t now_ms) {
  PgTransaction tx(*db_);
  if (!tx.status().ok()) return tx.status();
  ASSIGN_OR_RETURN(auto job, GetJob(job_id));
  ASSIGN_OR_RETURN(auto r, db_->Query("SELECT DISTINCT batch_id FROM items WHERE job_id = $1 AND state = 2", {job_id}));
  std::vector<std::string> batches;
  while (r.Next()) batches.push_back(r.Text(0));
  if (auto s = ExpectOk(db_->Query("UPDATE items SET state = 5, batch_id = '' WHERE job_id = $1 AND state IN (1, 2)",
                                   {job_id}));
      !s.ok()) {
    return s;
  }
  if (job.finished_ms == 0) {
    if (auto s = ExpectOk(db_->Query("UPDATE jobs SET state = 5, finished_ms = $1 WHERE id = $2", {now_ms, job_id}));
        !s.ok()) {
      return s;
    }
  }
  RETURN_IF_ERROR(tx.Commit());
  return batches;
}

absl::StatusOr<JobRecord> PostgresStore::FinishJobIfComplete(const std::string& job_id, int64_t now_ms) {
  ASSIGN_OR_RETURN(auto counts, Counts(job_id));
  if (counts.Finished()) {
    if (auto s = ExpectOk(db_->Query("UPDATE jobs SET state = $1, finished_ms = $2 WHERE id = $3 AND finished_ms = 0",
                                     {int64_t{static_cast<int>(FinishedJobState(counts))}, now_ms, job_id}));
        !s.ok()) {
      return s;
    }
  }
  return GetJob(job_id);
}

absl::StatusOr<int> PostgresStore::Recover() {
  PgTransaction tx(*db_);
  if (!tx.status().ok()) return tx.status();
  ASSIGN_OR_RETURN(auto requeued, db_->Query("UPDATE items SET state = 1, batch_id = '' WHERE state = 2"));
  // A submission cut short never answered its client, who submits again.
  if (auto s = db_->Exec("DELETE FROM leases;"
                         "DELETE FROM items WHERE job_id IN (SELECT id FROM jobs WHERE state = 0);"
                         "DELETE FROM job_counts WHERE job_id IN (SELECT id FROM jobs WHERE state = 0);"
                         "DELETE FROM jobs WHERE state = 0");
      !s.ok()) {
    return s;
  }
  RETURN_IF_ERROR(tx.Commit());
  return static_cast<int>(requeued.Affected());
}

absl::Status PostgresStore::UpsertWorker(const WorkerRecord& w) {
  return ExpectOk(db_->Query("INSERT INTO workers(id, info, last_seen_ms) VALUES($1,$2,$3) "
                             "ON CONFLICT(id) DO UPDATE SET info = excluded.info, last_seen_ms = excluded.last_seen_ms",
                             {w.id, w.info_json, w.last_seen_ms}));
}

absl::Status PostgresStore::AddWorkerImages(const std::string& worker_id, int64_t images, int64_t now_ms) {
  return ExpectOk(db_->Query("UPDATE workers SET images_done = images_done + $1, last_seen_ms = $2 WHERE id = $3",
                             {images, now_ms, worker_id}));
}

absl::StatusOr<std::vector<WorkerRecord>> PostgresStore::ListWorkers() {
  ASSIGN_OR_RETURN(auto r, db_->Query("SELECT id, info, last_seen_ms, images_done FROM workers ORDER BY id"));
  std::vector<WorkerRecord> out;
  while (r.Next()) out.push_back({r.Text(0), r.Text(1), r.Int(2), r.Int(3)});
  return out;
}

absl::StatusOr<std::map<std::string, int64_t>> PostgresStore::Totals() {
  ASSIGN_OR_RETURN(auto r, db_->Query(
      "SELECT COALESCE(SUM(queued), 0), COALESCE(SUM(running), 0), COALESCE(SUM(done), 0), "
      "COALESCE(SUM(failed), 0), COALESCE(SUM(cancelled), 0) FROM job_counts"));
  std::map<std::string, int64_t> out{{"done", 0}, {"failed", 0}, {"queued", 0}, {"running", 0}, {"cancelled", 0}};
  if (r.Next()) {
    out["queued"] = r.Int(0);
    out["running"] = r.Int(1);
    out["done"] = r.Int(2);
    out["failed"] = r.Int(3);
    out["cancelled"] = r.Int(4);
  }
  return out;
}

absl::StatusOr<LeaderLease> PostgresStore::ReadLeader() {
  ASSIGN_OR_RETURN(auto r, db_->Query(absl::StrCat("SELECT holder, address, expires_ms, ", kNowMs, " FROM leader WHERE id = 1")));
  LeaderLease out;
  if (r.Next()) out = {r.Text(0), r.Text(1), r.Int(2), r.Int(3)};
  return out;
}

absl::StatusOr<bool> PostgresStore::ClaimLeader(const LeaderLease& seen, const std::string& holder,
                                                const std::string& address, int64_t lease_ms) {
  ASSIGN_OR_RETURN(auto r, db_->Query(absl::StrCat("UPDATE leader SET holder = $1, address = $2, expires_ms = ", kNowMs,
                                   " + $3 WHERE id = 1 AND holder = $4 AND expires_ms = $5"),
                      {holder, address, lease_ms, seen.holder, seen.expires_ms}));
  return r.Affected() == 1;
}

}  // namespace spriteforge::coordinator
