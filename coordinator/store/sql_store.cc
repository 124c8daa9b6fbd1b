// SqlStore's submission and reads; its later changes are in sql_store_changes.cc.
#include "coordinator/store/sql_store.h"

#include <algorithm>
#include <chrono>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"

namespace spriteforge::coordinator {

absl::StatusOr<std::unique_ptr<SqlTransaction>> SqlStore::Begin() {
  std::unique_ptr<SqlTransaction> tx = NewTransaction();
  RETURN_IF_ERROR(tx->status());
  RETURN_IF_ERROR(CheckFence());
  return tx;
}

absl::StatusOr<int64_t> SqlStore::Write(const std::string& sql, const std::vector<SqlValue>& args) {
  ASSIGN_OR_RETURN(auto tx, Begin());
  ASSIGN_OR_RETURN(const int64_t changed, Execute(sql, args));
  RETURN_IF_ERROR(tx->Commit());
  return changed;
}

absl::Status SqlStore::CheckTables(const std::string& db_name, const std::set<std::string>& present,
                                   bool with_counts) {
  static const char* const kOwn[] = {"jobs", "items", "job_counts", "leases", "workers", "leader"};
  bool fresh = true;
  for (const char* table : kOwn) fresh = fresh && !present.count(table);
  if (fresh) return absl::OkStatus();
  for (const char* table : {"jobs", "items", "job_counts"}) {
    if (present.count(table) || (!with_counts && std::string(table) == "job_counts")) continue;
    return absl::DataLossError(absl::StrCat("database ", db_name, " has lost its ", table,
                                            " table; restore it from a backup (docs/operations.md)"));
  }
  return absl::OkStatus();
}

absl::Status SqlStore::CheckStates(const std::string& db_name) {
  std::string bad;
  RETURN_IF_ERROR(Select("SELECT id, state FROM jobs WHERE state NOT IN (0, 1, 2, 3, 4, 5) LIMIT 1", {},
                         [&](const Row& r) { bad = absl::StrCat("jobs row ", r.Text(0), " has unknown state ", r.Int(1)); }));
  if (bad.empty()) {
    RETURN_IF_ERROR(Select("SELECT job_id, idx, state FROM items WHERE state NOT IN (1, 2, 3, 4, 5) LIMIT 1", {},
                           [&](const Row& r) {
                             bad = absl::StrCat("items row ", r.Text(0), "/", r.Int(1), " has unknown state ", r.Int(2));
                           }));
  }
  if (bad.empty()) return absl::OkStatus();
  return absl::DataLossError(absl::StrCat("database ", db_name, ": ", bad,
                                          " (damaged, or written by a newer coordinator); refusing to start"));
}

void SqlStore::SetFencingEpoch(int64_t epoch, std::function<void(const absl::Status&)> on_fenced) {
  fencing_epoch_ = epoch;
  on_fenced_ = std::move(on_fenced);
}

// Inside the transaction just begun, so its writes commit only if no takeover came first;
// the share lock makes a takeover wait for them to commit (or roll back).
absl::Status SqlStore::CheckFence() {
  if (fencing_epoch_ == 0) return absl::OkStatus();
  int64_t epoch = -1;
  RETURN_IF_ERROR(Select(absl::StrCat("SELECT epoch FROM leader WHERE id = 1", ShareRow()), {},
                         [&](const Row& row) { epoch = row.Int(0); }));
  if (epoch == fencing_epoch_) return absl::OkStatus();
  absl::Status fenced = absl::FailedPreconditionError(
      absl::StrCat("fenced: another coordinator leads (epoch ", epoch, " > ", fencing_epoch_, ")"));
  if (on_fenced_) on_fenced_(fenced);
  return fenced;
}

absl::StatusOr<std::vector<JobRecord>> SqlStore::SelectJobs(const std::string& where,
                                                            const std::vector<SqlValue>& args) {
  std::vector<JobRecord> out;
  RETURN_IF_ERROR(Select(absl::StrCat("SELECT ", kJobColumns, " FROM jobs ", where), args,
                         [&](const Row& row) { out.push_back(ReadJob(row)); }));
  return out;
}

absl::StatusOr<std::vector<ItemRecord>> SqlStore::SelectItems(const std::string& where,
                                                              const std::vector<SqlValue>& args) {
  std::vector<ItemRecord> out;
  RETURN_IF_ERROR(Select(absl::StrCat("SELECT ", ItemColumns(), " FROM items ", where), args,
                         [&](const Row& row) { out.push_back(ReadItem(row)); }));
  return out;
}

absl::StatusOr<std::vector<std::string>> SqlStore::SelectTexts(const std::string& sql,
                                                               const std::vector<SqlValue>& args) {
  std::vector<std::string> out;
  RETURN_IF_ERROR(Select(sql, args, [&](const Row& row) { out.push_back(row.Text(0)); }));
  return out;
}

absl::StatusOr<JobRecord> SqlStore::InsertJob(JobRecord job, bool* deduplicated) {
  *deduplicated = false;
  if (!job.idempotency_key.empty()) {
    ASSIGN_OR_RETURN(auto found,
                     SelectJobs("WHERE owner = $1 AND idempotency_key = $2", {job.owner, job.idempotency_key}));
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
  RETURN_IF_ERROR(Select(insert, JobInsertValues(job), [&](const Row& row) { job.seq = row.Int(0); }));
  RETURN_IF_ERROR(Execute("INSERT INTO job_counts(job_id) VALUES($1)", {job.id}));
  return job;
}

absl::Status SqlStore::InsertItems(const std::string& job_id, const std::vector<ItemRecord>& items) {
  RETURN_IF_ERROR(InsertItemRows(job_id, items));
  const int64_t n = static_cast<int64_t>(items.size());
  return Execute("UPDATE job_counts SET total = total + $1, queued = queued + $2 WHERE job_id = $3", {n, n, job_id})
      .status();
}

absl::StatusOr<JobRecord> SqlStore::CreateJob(JobRecord job, const std::vector<ItemRecord>& items,
                                              bool* deduplicated) {
  if (job.prompts.empty()) {
    std::set<std::string> seen;
    for (const ItemRecord& it : items) {
      if (seen.insert(it.image.prompt()).second) job.prompts.push_back(it.image.prompt());
    }
  }
  ASSIGN_OR_RETURN(auto tx, Begin());
  job.state = JobState::kQueued;
  auto stored = InsertJob(job, deduplicated);
  if (!stored.ok() || *deduplicated) return stored;
  RETURN_IF_ERROR(InsertItems(stored->id, items));
  RETURN_IF_ERROR(tx->Commit());
  return stored;
}

absl::StatusOr<JobRecord> SqlStore::BeginJob(JobRecord job, bool* deduplicated) {
  ASSIGN_OR_RETURN(auto tx, Begin());
  job.state = JobState::kLoading;
  auto stored = InsertJob(job, deduplicated);
  if (!stored.ok() || *deduplicated) return stored;
  RETURN_IF_ERROR(tx->Commit());
  return stored;
}

absl::Status SqlStore::AddItems(const std::string& job_id, const std::vector<ItemRecord>& items) {
  ASSIGN_OR_RETURN(auto tx, Begin());
  RETURN_IF_ERROR(InsertItems(job_id, items));
  return tx->Commit();
}

absl::Status SqlStore::QueueJob(const std::string& job_id) {
  return Write("UPDATE jobs SET state = 1 WHERE id = $1 AND state = 0", {job_id}).status();
}

absl::Status SqlStore::DropLoadingJob(const std::string& job_id) {
  ASSIGN_OR_RETURN(auto tx, Begin());
  for (const char* sql : {"DELETE FROM items WHERE job_id = $1 AND (SELECT state FROM jobs WHERE id = $1) = 0",
                          "DELETE FROM job_counts WHERE job_id = $1 AND (SELECT state FROM jobs WHERE id = $1) = 0",
                          "DELETE FROM jobs WHERE id = $1 AND state = 0 AND $1 <> ''"}) {
    RETURN_IF_ERROR(Execute(sql, {job_id}));
  }
  return tx->Commit();
}

absl::Status SqlStore::DeleteJob(const std::string& job_id) {
  ASSIGN_OR_RETURN(auto tx, Begin());
  ASSIGN_OR_RETURN(auto jobs, SelectJobs("WHERE id = $1", {job_id}));
  if (jobs.empty()) return absl::NotFoundError(absl::StrCat("no job ", job_id));
  if (jobs.front().finished_ms == 0) {
    return absl::FailedPreconditionError(absl::StrCat("job ", job_id, " has not finished; cancel it first"));
  }
  for (const char* sql : {"DELETE FROM items WHERE job_id = $1", "DELETE FROM job_counts WHERE job_id = $1",
                          "DELETE FROM jobs WHERE id = $1"}) {
    RETURN_IF_ERROR(Execute(sql, {job_id}));
  }
  return tx->Commit();
}

absl::StatusOr<JobRecord> SqlStore::GetJob(const std::string& id) {
  ASSIGN_OR_RETURN(auto jobs, SelectJobs("WHERE id = $1", {id}));
  if (jobs.empty()) return absl::NotFoundError(absl::StrCat("no job ", id));
  return jobs.front();
}

absl::StatusOr<std::vector<JobRecord>> SqlStore::ListJobs(int limit, const std::optional<std::string>& owner) {
  if (owner) return SelectJobs("WHERE state <> 0 AND owner = $1 ORDER BY seq DESC LIMIT $2", {*owner, int64_t{limit}});
  return SelectJobs("WHERE state <> 0 ORDER BY seq DESC LIMIT $1", {int64_t{limit}});
}

namespace {

// The state a search word names, or -1.
int64_t StateNamed(const std::string& word) {
  static const std::pair<const char*, JobState> kNames[] = {
      {"queued", JobState::kQueued}, {"running", JobState::kRunning},     {"done", JobState::kDone},
      {"failed", JobState::kFailed}, {"cancelled", JobState::kCancelled}, {"canceled", JobState::kCancelled}};
  for (const auto& [name, state] : kNames) {
    if (word == name) return static_cast<int64_t>(state);
  }
  return -1;
}

// LIKE patterns finding `word` at the start or anywhere, its own %, _ and \ taken literally
// (ESCAPE '\').
std::string Beginning(const std::string& word) {
  std::string out;
  for (char c : word) {
    if (c == '%' || c == '_' || c == '\\') out += '\\';
    out += c;
  }
  return out + "%";
}
std::string Containing(const std::string& word) { return "%" + Beginning(word); }

}  // namespace

// Every value is a parameter: the statement's text depends only on which bounds are set and
// how many words there are.
absl::StatusOr<JobPage> SqlStore::FindJobs(const JobQuery& query) {
  std::string where = "WHERE state <> 0";
  std::vector<SqlValue> args;
  auto next = [&args](SqlValue value) {
    args.push_back(std::move(value));
    return absl::StrCat("$", args.size());
  };
  if (query.owner) absl::StrAppend(&where, " AND owner = ", next(*query.owner));
  if (query.created_from_ms > 0) absl::StrAppend(&where, " AND created_ms >= ", next(query.created_from_ms));
  if (query.created_until_ms > 0) absl::StrAppend(&where, " AND created_ms < ", next(query.created_until_ms));
  for (absl::string_view piece : absl::StrSplit(query.text, absl::ByAnyChar(" \t\r\n"), absl::SkipEmpty())) {
    const std::string word = absl::AsciiStrToLower(piece);
    const std::string pattern = next(Containing(word));
    const std::string prefix = next(Beginning(word));
    absl::StrAppend(&where, " AND (search_text LIKE ", pattern, " ESCAPE '\\' OR id LIKE ", prefix,
                    " ESCAPE '\\' OR state = ", next(StateNamed(word)), ")");
  }
  JobPage page;
  RETURN_IF_ERROR(Select(absl::StrCat("SELECT COUNT(*) FROM jobs ", where), args,
                         [&](const Row& row) { page.total = row.Int(0); }));
  const std::string limit = next(int64_t{std::max(0, query.limit)});
  const std::string offset = next(int64_t{std::max(0, query.offset)});
  ASSIGN_OR_RETURN(page.jobs, SelectJobs(absl::StrCat(where, " ORDER BY seq DESC LIMIT ", limit, " OFFSET ", offset),
                                         args));
  return page;
}

absl::Status SqlStore::FillSearchTexts(const std::string& db_name) {
  ASSIGN_OR_RETURN(std::vector<std::string> ids, SelectTexts("SELECT id FROM jobs WHERE search_text = '' ORDER BY seq", {}));
  if (ids.empty()) return absl::OkStatus();
  // A transaction per group of jobs; each job's items are read a page at a time.
  constexpr size_t kJobsPerTransaction = 200;
  constexpr int kItemsPerRead = 5000;
  for (size_t first = 0; first < ids.size(); first += kJobsPerTransaction) {
    std::vector<std::pair<std::string, std::string>> texts;  // (id, search text)
    for (size_t i = first; i < std::min(ids.size(), first + kJobsPerTransaction); ++i) {
      ASSIGN_OR_RETURN(JobRecord job, GetJob(ids[i]));
      std::set<std::string> seen;
      for (int after = -1;;) {
        ASSIGN_OR_RETURN(auto items, ItemsPage(job.id, after, kItemsPerRead));
        for (const ItemRecord& it : items) {
          if (seen.insert(it.image.prompt()).second) job.prompts.push_back(it.image.prompt());
        }
        if (items.size() < static_cast<size_t>(kItemsPerRead)) break;
        after = items.back().index;
      }
      texts.emplace_back(job.id, JobSearchText(job));
    }
    ASSIGN_OR_RETURN(auto tx, Begin());
    for (const auto& [id, text] : texts) {
      RETURN_IF_ERROR(Execute("UPDATE jobs SET search_text = $1 WHERE id = $2 AND search_text = ''", {text, id}));
    }
    RETURN_IF_ERROR(tx->Commit());
  }
  spdlog::info("database {}: {} jobs stored before the job search got their search text", db_name, ids.size());
  return absl::OkStatus();
}

absl::StatusOr<std::vector<JobRecord>> SqlStore::UnfinishedJobs() {
  return SelectJobs("WHERE finished_ms = 0 ORDER BY seq", {});
}

absl::StatusOr<Backlog> SqlStore::OwnerBacklog(const std::string& owner) {
  Backlog out;
  RETURN_IF_ERROR(Select("SELECT COUNT(*), COALESCE(SUM((SELECT COUNT(*) FROM items WHERE items.job_id = jobs.id "
                         "AND items.state IN (1, 2))), 0) FROM jobs WHERE owner = $1 AND finished_ms = 0",
                         {owner}, [&](const Row& row) { out = {row.Int(0), row.Int(1)}; }));
  return out;
}

absl::StatusOr<std::vector<ItemRecord>> SqlStore::Items(const std::string& job_id) {
  return SelectItems("WHERE job_id = $1 ORDER BY idx", {job_id});
}

absl::StatusOr<std::vector<ItemRecord>> SqlStore::ItemsPage(const std::string& job_id, int after, int limit) {
  return SelectItems("WHERE job_id = $1 AND idx > $2 ORDER BY idx LIMIT $3", {job_id, int64_t{after}, int64_t{limit}});
}

absl::StatusOr<ItemCounts> SqlStore::Counts(const std::string& job_id) {
  ItemCounts c;
  RETURN_IF_ERROR(Select("SELECT total, queued, running, done, failed, cancelled FROM job_counts WHERE job_id = $1",
                         {job_id}, [&](const Row& row) {
                           c.total = static_cast<int>(row.Int(0));
                           c.queued = static_cast<int>(row.Int(1));
                           c.running = static_cast<int>(row.Int(2));
                           c.done = static_cast<int>(row.Int(3));
                           c.failed = static_cast<int>(row.Int(4));
                           c.cancelled = static_cast<int>(row.Int(5));
                         }));
  return c;
}

absl::StatusOr<std::vector<ItemRecord>> SqlStore::QueuedItems() {
  return SelectItems("WHERE state = 1 ORDER BY (SELECT seq FROM jobs WHERE jobs.id = items.job_id), idx", {});
}

absl::StatusOr<std::vector<ItemRecord>> SqlStore::QueuedItems(const std::string& job_id, int after, int limit) {
  return SelectItems("WHERE job_id = $1 AND state = 1 AND idx > $2 ORDER BY idx LIMIT $3",
                     {job_id, int64_t{after}, int64_t{limit}});
}

absl::Status SqlStore::RenewLeases(const std::string& worker_id, int64_t expires_ms) {
  return Write("UPDATE leases SET expires_ms = $1 WHERE worker_id = $2", {expires_ms, worker_id}).status();
}

absl::StatusOr<std::vector<std::string>> SqlStore::ExpiredBatches(int64_t now_ms) {
  return SelectTexts("SELECT batch_id FROM leases WHERE expires_ms < $1", {now_ms});
}

absl::StatusOr<std::vector<std::string>> SqlStore::BatchesOfWorker(const std::string& worker_id) {
  return SelectTexts("SELECT batch_id FROM leases WHERE worker_id = $1", {worker_id});
}

absl::StatusOr<std::vector<ItemRecord>> SqlStore::RunningItems(const std::string& batch_id) {
  return SelectItems("WHERE batch_id = $1 AND state = 2 ORDER BY job_id, idx", {batch_id});
}

absl::StatusOr<std::set<SqlStore::ResultKey>> SqlStore::LockRunning(const std::vector<Completion>& done) {
  std::set<ResultKey> running;
  for (const Completion& c : done) {
    RETURN_IF_ERROR(Select(absl::StrCat("SELECT job_id, idx, batch_id FROM items "
                                        "WHERE job_id = $1 AND idx = $2 AND state = 2 AND batch_id = $3",
                                        LockRows()),
                           {c.item.job_id, int64_t{c.item.index}, c.batch_id},
                           [&](const Row& row) { running.insert({row.Text(0), static_cast<int>(row.Int(1)), row.Text(2)}); }));
  }
  return running;
}

// The files go in place after the fence check and before the commit, while the transaction
// holds the leader row (FOR SHARE on PostgreSQL): a takeover waits for the commit, and after
// one this leader's next transaction fails its check before any file moves.
absl::StatusOr<std::vector<bool>> SqlStore::CompleteItems(const std::vector<Completion>& done, int64_t now_ms,
                                                          const PlaceResults& place) {
  if (done.empty()) return std::vector<bool>{};
  ASSIGN_OR_RETURN(auto tx, Begin());
  ASSIGN_OR_RETURN(std::set<ResultKey> running, LockRunning(done));
  // Half the database's idle limit after the last statement: the session is alive until then.
  const int64_t idle_ms = IdleTransactionLimitMs();
  const auto deadline = idle_ms > 0 ? std::chrono::steady_clock::now() + std::chrono::milliseconds(idle_ms / 2)
                                    : std::chrono::steady_clock::time_point::max();
  std::vector<bool> accepted;
  accepted.reserve(done.size());
  // A result listed twice counts once, as the first.
  for (const Completion& c : done) accepted.push_back(running.erase({c.item.job_id, c.item.index, c.batch_id}) > 0);
  if (place) {
    const std::vector<bool> placed = place(accepted, deadline);
    for (size_t i = 0; i < accepted.size(); ++i) accepted[i] = accepted[i] && i < placed.size() && placed[i];
  }
  std::vector<Completion> record;
  for (size_t i = 0; i < done.size(); ++i) {
    if (accepted[i]) record.push_back(done[i]);
  }
  RETURN_IF_ERROR(RecordResults(record, now_ms));
  RETURN_IF_ERROR(tx->Commit());
  return accepted;
}

absl::StatusOr<bool> SqlStore::CompleteItem(const std::string& batch_id, const ItemKey& item,
                                            const std::string& image_path, const std::string& sprite_path,
                                            int64_t now_ms) {
  ASSIGN_OR_RETURN(auto done, CompleteItems({{batch_id, item, image_path, sprite_path}}, now_ms));
  return done.front();
}

}  // namespace spriteforge::coordinator
