#include "coordinator/store/schema.h"

#include <utility>

#include "absl/strings/str_replace.h"
#include "coordinator/store/rows.h"

namespace spriteforge::coordinator {
namespace {

// What the statements below leave open, as each dialect spells it.
struct Spelling {
  const char* placeholder;
  const char* sqlite;
  const char* postgres;
};
constexpr Spelling kSpellings[] = {
    // SQLite's INTEGER holds 64 bits; PostgreSQL's holds 32.
    {"{int64}", "INTEGER", "BIGINT"},
    {"{blob}", "BLOB", "BYTEA"},
    // A key numbered in insertion order (the jobs' submission order), never reused.
    {"{serial_key}", "INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY"},
    // A table keyed by text, stored by that key without SQLite's hidden row number.
    {"{without_rowid}", " WITHOUT ROWID", ""},
};

enum class For { kBoth, kSqlite, kPostgres };

bool Applies(For which, SqlDialect dialect) {
  return which == For::kBoth || (which == For::kSqlite) == (dialect == SqlDialect::kSqlite);
}

struct SchemaStatement {
  For which;
  const char* sql;
};

// In order: a statement may name the tables of those before it. {job_settings} and
// {item_params} are the columns rows.h defines.
constexpr SchemaStatement kSchema[] = {
    {For::kBoth, R"sql(CREATE TABLE IF NOT EXISTS jobs(
  seq {serial_key},
  id TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  model TEXT NOT NULL,
  priority INTEGER NOT NULL,
  state INTEGER NOT NULL,
  created_ms {int64} NOT NULL,
  started_ms {int64} NOT NULL DEFAULT 0,
  finished_ms {int64} NOT NULL DEFAULT 0,
  idempotency_key TEXT,
  owner TEXT NOT NULL DEFAULT '',
  {job_settings},
  search_text TEXT NOT NULL DEFAULT ''))sql"},
    {For::kBoth, R"sql(CREATE TABLE IF NOT EXISTS items(
  job_id TEXT NOT NULL REFERENCES jobs(id),
  idx INTEGER NOT NULL,
  {item_params},
  state INTEGER NOT NULL,
  batch_id TEXT NOT NULL DEFAULT '',
  worker_id TEXT NOT NULL DEFAULT '',
  attempts INTEGER NOT NULL DEFAULT 0,
  image_path TEXT NOT NULL DEFAULT '',
  sprite_path TEXT NOT NULL DEFAULT '',
  failure INTEGER NOT NULL DEFAULT 0,
  failure_message TEXT NOT NULL DEFAULT '',
  done_ms {int64} NOT NULL DEFAULT 0,
  PRIMARY KEY(job_id, idx)))sql"},
    // A job's queue in index order, and its items by state.
    {For::kBoth, "CREATE INDEX IF NOT EXISTS items_queue ON items(job_id, state, idx)"},
    // Early SQLite stores' index by state alone, which items_queue covers.
    {For::kSqlite, "DROP INDEX IF EXISTS items_state"},
    {For::kBoth, "CREATE INDEX IF NOT EXISTS items_batch ON items(batch_id)"},
    {For::kBoth, R"sql(CREATE TABLE IF NOT EXISTS leases(
  batch_id TEXT PRIMARY KEY,
  worker_id TEXT NOT NULL,
  expires_ms {int64} NOT NULL))sql"},
    {For::kBoth, "CREATE INDEX IF NOT EXISTS leases_worker ON leases(worker_id)"},
    // Items per state of each job, kept by a trigger in the same transaction as every change,
    // so progress and totals are one row read instead of a count over the job's items.
    {For::kBoth, R"sql(CREATE TABLE IF NOT EXISTS job_counts(
  job_id TEXT PRIMARY KEY,
  total {int64} NOT NULL DEFAULT 0,
  queued {int64} NOT NULL DEFAULT 0,
  running {int64} NOT NULL DEFAULT 0,
  done {int64} NOT NULL DEFAULT 0,
  failed {int64} NOT NULL DEFAULT 0,
  cancelled {int64} NOT NULL DEFAULT 0){without_rowid})sql"},
    // The trigger: SQLite's runs its statements itself, PostgreSQL's calls a function.
    {For::kSqlite,
     R"sql(CREATE TRIGGER IF NOT EXISTS items_count_states AFTER UPDATE OF state ON items WHEN old.state <> new.state
BEGIN
  UPDATE job_counts SET
    queued = queued + (new.state = 1) - (old.state = 1),
    running = running + (new.state = 2) - (old.state = 2),
    done = done + (new.state = 3) - (old.state = 3),
    failed = failed + (new.state = 4) - (old.state = 4),
    cancelled = cancelled + (new.state = 5) - (old.state = 5)
  WHERE job_id = new.job_id;
END)sql"},
    {For::kPostgres, R"sql(CREATE OR REPLACE FUNCTION spriteforge_count_states() RETURNS trigger AS $$
BEGIN
  UPDATE job_counts SET
    queued = queued + (NEW.state = 1)::int - (OLD.state = 1)::int,
    running = running + (NEW.state = 2)::int - (OLD.state = 2)::int,
    done = done + (NEW.state = 3)::int - (OLD.state = 3)::int,
    failed = failed + (NEW.state = 4)::int - (OLD.state = 4)::int,
    cancelled = cancelled + (NEW.state = 5)::int - (OLD.state = 5)::int
  WHERE job_id = NEW.job_id;
  RETURN NULL;
END $$ LANGUAGE plpgsql)sql"},
    {For::kPostgres, R"sql(CREATE OR REPLACE TRIGGER items_count_states AFTER UPDATE OF state ON items
  FOR EACH ROW WHEN (OLD.state <> NEW.state) EXECUTE FUNCTION spriteforge_count_states())sql"},
    {For::kBoth, R"sql(CREATE TABLE IF NOT EXISTS workers(
  id TEXT PRIMARY KEY,
  info TEXT NOT NULL,
  last_seen_ms {int64} NOT NULL,
  images_done {int64} NOT NULL DEFAULT 0))sql"},
    // Who leads the coordinators sharing this database (one row).
    {For::kBoth, R"sql(CREATE TABLE IF NOT EXISTS leader(
  id INTEGER PRIMARY KEY CHECK (id = 1),
  holder TEXT NOT NULL,
  address TEXT NOT NULL,
  expires_ms {int64} NOT NULL,
  epoch {int64} NOT NULL DEFAULT 0))sql"},
    {For::kBoth, "INSERT INTO leader(id, holder, address, expires_ms) VALUES(1, '', '', 0) ON CONFLICT DO NOTHING"},
};

struct AddedColumnSpec {
  For which;
  const char* table;
  const char* column;
  const char* definition;
};
// As in the tables above. PostgreSQL stores had owner and preview_every from their start.
// search_text: what the job history is searched by (rows.h JobSearchText); jobs stored
// before it get theirs when the store opens (SqlStore::FillSearchTexts).
constexpr AddedColumnSpec kAddedColumns[] = {
    {For::kSqlite, "jobs", "owner", "TEXT NOT NULL DEFAULT ''"},
    {For::kSqlite, "jobs", "preview_every", "INTEGER NOT NULL DEFAULT 0"},
    {For::kBoth, "leader", "epoch", "{int64} NOT NULL DEFAULT 0"},
    {For::kBoth, "jobs", "search_text", "TEXT NOT NULL DEFAULT ''"},
};

}  // namespace

std::string Spelled(const std::string& sql, SqlDialect dialect) {
  std::vector<std::pair<const char*, const char*>> spellings;
  for (const Spelling& s : kSpellings) {
    spellings.emplace_back(s.placeholder, dialect == SqlDialect::kSqlite ? s.sqlite : s.postgres);
  }
  return absl::StrReplaceAll(sql, spellings);
}

std::string CreateSchemaSql(SqlDialect dialect) {
  std::string sql;
  for (const SchemaStatement& s : kSchema) {
    if (Applies(s.which, dialect)) sql.append(s.sql).append(";\n");
  }
  // The columns first: their definitions hold placeholders of their own.
  sql = absl::StrReplaceAll(
      sql, {{"{job_settings}", kJobSettingColumnDefinitions}, {"{item_params}", kItemParamColumnDefinitions}});
  return Spelled(sql, dialect);
}

std::vector<AddedColumn> AddedColumns(SqlDialect dialect) {
  std::vector<AddedColumn> out;
  for (const AddedColumnSpec& c : kAddedColumns) {
    if (Applies(c.which, dialect)) out.push_back({c.table, c.column, Spelled(c.definition, dialect)});
  }
  return out;
}

std::string IndexAddedColumnsSql() {
  // Idempotency keys are per owner: one owner's key neither finds nor blocks another's job.
  // Stores from before lose the index over the key alone.
  return "DROP INDEX IF EXISTS jobs_key;\n"
         "CREATE UNIQUE INDEX IF NOT EXISTS jobs_owner_key ON jobs(owner, idempotency_key) "
         "WHERE idempotency_key <> '';\n";
}

}  // namespace spriteforge::coordinator
