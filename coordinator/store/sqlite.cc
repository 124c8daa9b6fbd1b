#include "coordinator/store/sqlite.h"

#include <memory>

#include "absl/strings/str_cat.h"

namespace spriteforge::coordinator {

Statement::Statement(sqlite3* db, const char* sql) : db_(db) {
  if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) {
    status_ = absl::InternalError(absl::StrCat("sqlite: ", sqlite3_errmsg(db), " in: ", sql));
  }
}

Statement::Statement(Database& db, const char* sql) : db_(db.raw()), cache_(&db) {
  stmt_ = db.Checkout(sql);
  if (!stmt_) status_ = absl::InternalError(absl::StrCat("sqlite: ", sqlite3_errmsg(db_), " in: ", sql));
}

Statement::~Statement() {
  if (cache_ && stmt_) {
    cache_->Return(stmt_);
  } else {
    sqlite3_finalize(stmt_);
  }
}

sqlite3_stmt* Database::Checkout(const char* sql) {
  auto it = idle_.find(sql);
  if (it != idle_.end() && !it->second.empty()) {
    sqlite3_stmt* stmt = it->second.back();
    it->second.pop_back();
    return stmt;
  }
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return nullptr;
  }
  return stmt;
}

void Database::Return(sqlite3_stmt* stmt) {
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  idle_[sqlite3_sql(stmt)].push_back(stmt);
}

Statement& Statement::Bind(int i, int64_t v) {
  if (stmt_) sqlite3_bind_int64(stmt_, i, v);
  return *this;
}
Statement& Statement::Bind(int i, double v) {
  if (stmt_) sqlite3_bind_double(stmt_, i, v);
  return *this;
}
Statement& Statement::Bind(int i, const std::string& v) {
  if (stmt_) sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  return *this;
}
Statement& Statement::Bind(int i, const std::optional<std::string>& v) {
  return v ? Bind(i, *v) : BindNull(i);
}
Statement& Statement::BindBlob(int i, const std::string& bytes) {
  if (stmt_) sqlite3_bind_blob(stmt_, i, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT);
  return *this;
}
Statement& Statement::BindNull(int i) {
  if (stmt_) sqlite3_bind_null(stmt_, i);
  return *this;
}

Statement& Statement::Bind(int i, const SqlValue& v) {
  if (const auto* n = std::get_if<int64_t>(&v)) return Bind(i, *n);
  if (const auto* d = std::get_if<double>(&v)) return Bind(i, *d);
  if (const auto* t = std::get_if<std::string>(&v)) return Bind(i, *t);
  if (const auto* b = std::get_if<SqlBytes>(&v)) return BindBlob(i, b->bytes);
  return BindNull(i);
}

bool Statement::Step() {
  if (!stmt_ || !status_.ok()) return false;
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc != SQLITE_DONE) {
    const int code = sqlite3_extended_errcode(db_);
    const std::string msg = absl::StrCat("sqlite: ", sqlite3_errmsg(db_));
    // A full disk or read-only file is the operator's to fix; say so distinctly.
    status_ = (code == SQLITE_FULL || (code & 0xff) == SQLITE_IOERR || code == SQLITE_READONLY)
                  ? absl::ResourceExhaustedError(msg)
                  : absl::InternalError(msg);
  }
  return false;
}

absl::Status Statement::Run() {
  while (Step()) {
  }
  return status_;
}

int64_t Statement::Int(int col) const { return sqlite3_column_int64(stmt_, col); }
double Statement::Double(int col) const { return sqlite3_column_double(stmt_, col); }
std::string Statement::Text(int col) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
  return p ? std::string(p, sqlite3_column_bytes(stmt_, col)) : std::string();
}
std::string Statement::Blob(int col) const {
  const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, col));
  return p ? std::string(p, sqlite3_column_bytes(stmt_, col)) : std::string();
}
std::optional<std::string> Statement::OptText(int col) const {
  if (sqlite3_column_type(stmt_, col) == SQLITE_NULL) return std::nullopt;
  return Text(col);
}

absl::StatusOr<std::unique_ptr<Database>> Database::Open(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return absl::UnavailableError(absl::StrCat("cannot open database ", path, ": ", msg));
  }
  sqlite3_busy_timeout(db, 5000);
  std::unique_ptr<Database> out(new Database(db));
  // WAL: readers never block the writer; NORMAL sync survives process crashes (kill -9);
  // after a power loss the last commits may roll back, and those items simply run again.
  for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA foreign_keys=ON"}) {
    if (auto s = out->Exec(pragma); !s.ok()) {
      return absl::UnavailableError(absl::StrCat("cannot open database ", path, ": ", s.message()));
    }
  }
  return out;
}

Database::~Database() {
  for (auto& [sql, stmts] : idle_) {
    for (sqlite3_stmt* stmt : stmts) sqlite3_finalize(stmt);
  }
  sqlite3_close(db_);
}

absl::Status Database::Exec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    return absl::InternalError(absl::StrCat("sqlite: ", msg));
  }
  return absl::OkStatus();
}

}  // namespace spriteforge::coordinator
