#include "coordinator/store/postgres_store.h"

#include <algorithm>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "coordinator/store/postgres.h"
#include "coordinator/store/schema.h"

namespace spriteforge::coordinator {
namespace {

// Two coordinators starting at once would race to create the schema; the first takes
// this lock (any constant; it names the schema) and the second finds the tables made.
constexpr const char* kSchemaLock = "SELECT pg_advisory_xact_lock(7163022)";

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

// Less than the shortest leader lease (--leader-lease-seconds, 5 by default), more than any
// pause between two statements of one transaction.
constexpr int64_t kIdleTransactionMs = 2000;

// The rows of results whose item runs under their batch, locked for the result transaction.
constexpr const char* kLockRunningSql = R"sql(
SELECT i.job_id, i.idx, i.batch_id FROM items i
JOIN unnest($1::text[], $2::int[], $3::text[]) AS d(job_id, idx, batch_id)
  ON i.job_id = d.job_id AND i.idx = d.idx AND i.batch_id = d.batch_id
WHERE i.state = 2
FOR UPDATE OF i
)sql";

absl::Status ExpectOk(const absl::StatusOr<PgResult>& r) { return r.ok() ? absl::OkStatus() : r.status(); }

// The schema (schema.h) in one transaction under the schema lock, with the columns added
// since a table's first version.
std::string SchemaSql() {
  std::string sql = absl::StrCat("BEGIN;", kSchemaLock, ";\n", CreateSchemaSql(SqlDialect::kPostgres));
  for (const AddedColumn& c : AddedColumns(SqlDialect::kPostgres)) {
    absl::StrAppend(&sql, "ALTER TABLE ", c.table, " ADD COLUMN IF NOT EXISTS ", c.column, " ", c.definition, ";\n");
  }
  return absl::StrCat(sql, IndexAddedColumnsSql(), "COMMIT;");
}

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
  std::string session;
  if (url.find("synchronous_commit") == std::string::npos) session += "SET synchronous_commit = off;";
  // A leader stopped inside a transaction (SIGSTOP, a frozen VM) holds the leader row's share
  // lock that every write takes (the fence); the server ends such a session after this long
  // idle, well within the leader lease, so it never holds a takeover off. A URL that sets
  // idle_in_transaction_session_timeout itself keeps it.
  if (url.find("idle_in_transaction_session_timeout") == std::string::npos) {
    absl::StrAppend(&session, "SET idle_in_transaction_session_timeout = ", kIdleTransactionMs, ";");
  }
  if (!session.empty()) RETURN_IF_ERROR(db->SetSessionSql(session));
  int64_t idle_limit_ms = 0;
  {
    ASSIGN_OR_RETURN(auto r, db->Query("SELECT setting::bigint FROM pg_settings "
                                       "WHERE name = 'idle_in_transaction_session_timeout'"));
    if (r.Next()) idle_limit_ms = r.Int(0);
  }
  // A store that lost a table is refused as it is, before the schema would make it again empty.
  {
    std::set<std::string> tables;
    ASSIGN_OR_RETURN(auto found, db->Query("SELECT table_name FROM information_schema.tables "
                                           "WHERE table_schema = current_schema()"));
    while (found.Next()) tables.insert(found.Text(0));
    RETURN_IF_ERROR(SqlStore::CheckTables(db->name(), tables, /*with_counts=*/true));
  }
  if (auto s = db->Exec(SchemaSql()); !s.ok()) {
    db->Exec("ROLLBACK").IgnoreError();
    return absl::DataLossError(absl::StrCat("database ", db->name(), " is not a spriteforge store: ", s.message()));
  }
  const std::string name = db->name();
  std::unique_ptr<PostgresStore> store(new PostgresStore(std::move(db)));
  store->idle_limit_ms_ = idle_limit_ms;
  RETURN_IF_ERROR(store->CheckStates(name));
  RETURN_IF_ERROR(store->FillSearchTexts(name));
  return std::unique_ptr<Store>(std::move(store));
}

std::unique_ptr<SqlTransaction> PostgresStore::NewTransaction() { return std::make_unique<PgTransaction>(*db_); }

absl::StatusOr<int64_t> PostgresStore::Execute(const std::string& sql, const std::vector<SqlValue>& args) {
  ASSIGN_OR_RETURN(auto r, db_->Query(sql, args));
  return r.Affected();
}

absl::Status PostgresStore::Select(const std::string& sql, const std::vector<SqlValue>& args,
                                   const std::function<void(const Row&)>& each) {
  ASSIGN_OR_RETURN(auto r, db_->Query(sql, args));
  while (r.Next()) each(r);
  return absl::OkStatus();
}

const char* PostgresStore::NowMs() const { return kNowMs; }

absl::Status PostgresStore::InsertItemRows(const std::string& job_id, const std::vector<ItemRecord>& items) {
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
  return absl::OkStatus();
}

absl::Status PostgresStore::Lease(const std::string& batch_id, const std::string& worker_id,
                                  const std::vector<ItemKey>& items, int64_t expires_ms, int64_t now_ms) {
  std::vector<std::string> jobs;
  std::vector<int> indexes;
  for (const ItemKey& key : items) {
    jobs.push_back(key.job_id);
    indexes.push_back(key.index);
  }
  ASSIGN_OR_RETURN(auto tx, Begin());  // fenced like every write
  ASSIGN_OR_RETURN(auto r, db_->Query(kLeaseSql, {batch_id, worker_id, expires_ms, TextArray(jobs), IntArray(indexes),
                                  static_cast<int64_t>(items.size()), now_ms}));
  if (!r.Next()) return absl::InternalError("lease: no answer");
  if (r.Text(0) != "t") {
    // Not queued, or held by another transaction at this moment.
    return absl::FailedPreconditionError(absl::StrCat("item ", r.Text(1), " is not queued"));
  }
  return tx->Commit();
}

namespace {

// Text and index arrays of the results, for unnest().
struct ResultArrays {
  std::vector<std::string> jobs, batches, images, sprites;
  std::vector<int> indexes;
  explicit ResultArrays(const std::vector<Completion>& done) {
    for (const Completion& c : done) {
      jobs.push_back(c.item.job_id);
      indexes.push_back(c.item.index);
      batches.push_back(c.batch_id);
      images.push_back(c.image_path);
      sprites.push_back(c.sprite_path);
    }
  }
};

}  // namespace

absl::StatusOr<std::set<SqlStore::ResultKey>> PostgresStore::LockRunning(const std::vector<Completion>& done) {
  std::set<ResultKey> running;
  if (done.empty()) return running;
  const ResultArrays a(done);
  ASSIGN_OR_RETURN(auto r, db_->Query(kLockRunningSql, {TextArray(a.jobs), IntArray(a.indexes), TextArray(a.batches)}));
  while (r.Next()) running.insert({r.Text(0), static_cast<int>(r.Int(1)), r.Text(2)});
  return running;
}

absl::Status PostgresStore::RecordResults(const std::vector<Completion>& done, int64_t now_ms) {
  if (done.empty()) return absl::OkStatus();
  const ResultArrays a(done);
  return ExpectOk(db_->Query(kCompleteSql, {now_ms, TextArray(a.jobs), IntArray(a.indexes), TextArray(a.batches),
                                            TextArray(a.images), TextArray(a.sprites)}));
}

}  // namespace spriteforge::coordinator
