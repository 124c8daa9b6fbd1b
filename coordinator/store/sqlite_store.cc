#include "coordinator/store/sqlite_store.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/store/legacy_rows.h"
#include "coordinator/store/rows.h"
#include "coordinator/store/schema.h"
#include "coordinator/store/sqlite.h"

namespace spriteforge::coordinator {
namespace {

// SqlStore's $1, $2 ... as SQLite's ?1, ?2 ..., which bind by the same numbers.
std::string Numbered(const std::string& sql) {
  std::string out = sql;
  for (size_t i = 0; i + 1 < out.size(); ++i) {
    if (out[i] == '$' && out[i + 1] >= '0' && out[i + 1] <= '9') out[i] = '?';
  }
  return out;
}

void BindAll(Statement& q, const std::vector<SqlValue>& args) {
  for (size_t i = 0; i < args.size(); ++i) q.Bind(static_cast<int>(i) + 1, args[i]);
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

// The schema version this coordinator writes (PRAGMA user_version); a database of a later
// one was written by a newer coordinator, whose rows this one may misread.
constexpr int64_t kSchemaVersion = 1;

// Before anything is created or converted: a database of a newer schema, or a store that
// lost a table, is refused as it is.
static absl::Status CheckBeforeOpening(Database& db, const std::string& path) {
  int64_t version = 0;
  {
    Statement q(db.raw(), "PRAGMA user_version");
    if (q.Step()) version = q.Int(0);
  }
  if (version > kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat("database ", path, " has schema version ", version,
                                                      "; this coordinator knows versions up to ", kSchemaVersion,
                                                      " (a newer spriteforge wrote it)"));
  }
  std::set<std::string> tables;
  Statement q(db.raw(), "SELECT name FROM sqlite_master WHERE type = 'table'");
  while (q.Step()) tables.insert(q.Text(0));
  RETURN_IF_ERROR(q.status());
  return SqlStore::CheckTables(path, tables, version >= 1);
}

absl::StatusOr<std::unique_ptr<Store>> SqliteStore::Open(const std::string& path) {
  ASSIGN_OR_RETURN(auto db, Database::Open(path));
  RETURN_IF_ERROR(CheckBeforeOpening(*db, path));
  if (auto s = db->Exec(CreateSchemaSql(SqlDialect::kSqlite)); !s.ok()) {
    return absl::DataLossError(absl::StrCat("database ", path, " is not a spriteforge store: ", s.message()));
  }
  // Databases made by earlier versions: columns added since (schema.h), and the per-field
  // parameter columns converted to the messages (legacy_rows.h).
  for (const AddedColumn& c : AddedColumns(SqlDialect::kSqlite)) {
    if (auto s = AddMissingColumn(*db, c.table.c_str(), c.column.c_str(), c.definition.c_str()); !s.ok()) {
      return absl::DataLossError(
          absl::StrCat("database ", path, ": cannot add the ", c.table, " ", c.column, " column: ", s.message()));
    }
  }
  if (auto s = db->Exec(IndexAddedColumnsSql()); !s.ok()) {
    return absl::DataLossError(absl::StrCat("database ", path, ": cannot index idempotency keys per owner: ",
                                            s.message()));
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
  std::unique_ptr<SqliteStore> store(new SqliteStore(std::move(db)));
  RETURN_IF_ERROR(store->CheckStates(path));
  RETURN_IF_ERROR(store->FillSearchTexts(path));
  return std::unique_ptr<Store>(std::move(store));
}

std::unique_ptr<SqlTransaction> SqliteStore::NewTransaction() { return std::make_unique<Transaction>(*db_); }

absl::StatusOr<int64_t> SqliteStore::Execute(const std::string& sql, const std::vector<SqlValue>& args) {
  Statement q(*db_, Numbered(sql).c_str());
  BindAll(q, args);
  RETURN_IF_ERROR(q.Run());
  return db_->Changes();
}

absl::Status SqliteStore::Select(const std::string& sql, const std::vector<SqlValue>& args,
                                 const std::function<void(const Row&)>& each) {
  Statement q(*db_, Numbered(sql).c_str());
  BindAll(q, args);
  while (q.Step()) each(q);
  return q.status();
}

const char* SqliteStore::NowMs() const { return "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"; }

absl::Status SqliteStore::InsertItemRows(const std::string& job_id, const std::vector<ItemRecord>& items) {
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
  return absl::OkStatus();
}

absl::Status SqliteStore::Lease(const std::string& batch_id, const std::string& worker_id,
                                const std::vector<ItemKey>& items, int64_t expires_ms, int64_t now_ms) {
  ASSIGN_OR_RETURN(auto tx, Begin());
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
  return tx->Commit();
}

absl::Status SqliteStore::RecordResults(const std::vector<Completion>& done, int64_t now_ms) {
  for (const Completion& c : done) {
    Statement q(*db_,
                "UPDATE items SET state = 3, image_path = ?, sprite_path = ?, done_ms = ? "
                "WHERE job_id = ? AND idx = ? AND state = 2 AND batch_id = ?");
    q.Bind(1, c.image_path).Bind(2, c.sprite_path).Bind(3, now_ms).Bind(4, c.item.job_id).Bind(5, c.item.index)
        .Bind(6, c.batch_id);
    RETURN_IF_ERROR(q.Run());
  }
  return absl::OkStatus();
}

}  // namespace spriteforge::coordinator
