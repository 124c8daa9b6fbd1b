#include "coordinator/store/backup.h"

#include <sqlite3.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"

namespace spriteforge::coordinator {
namespace {

constexpr char kHeader[] = "SQLite format 3";  // the first 16 bytes, with its NUL

// An open connection, closed on scope exit.
struct Connection {
  sqlite3* db = nullptr;
  ~Connection() { sqlite3_close(db); }
};

// The first row of a one-column PRAGMA, or the error that stopped it.
std::string PragmaText(sqlite3* db, const char* sql) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr) != SQLITE_OK) return sqlite3_errmsg(db);
  std::string out;
  const int rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    out = text ? text : "";
  } else {
    out = sqlite3_errmsg(db);
  }
  sqlite3_finalize(stmt);
  return out;
}

}  // namespace

absl::Status CheckDatabaseFile(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec) || std::filesystem::file_size(path, ec) == 0) return absl::OkStatus();
  const std::string advice = "the coordinator leaves it untouched: restore a backup or move it aside";
  char header[16] = {};
  std::ifstream(path, std::ios::binary).read(header, sizeof header);
  if (std::string(header, sizeof header) != std::string(kHeader, sizeof kHeader)) {
    return absl::DataLossError(absl::StrCat("database ", path, " is not a SQLite database; ", advice));
  }
  Connection c;
  if (sqlite3_open_v2(path.c_str(), &c.db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    return absl::DataLossError(absl::StrCat("database ", path, " cannot be opened (", sqlite3_errmsg(c.db), "); ", advice));
  }
  const std::string check = PragmaText(c.db, "PRAGMA quick_check");
  if (check != "ok") {
    return absl::DataLossError(absl::StrCat("database ", path, " is damaged (quick_check: ", check, "); ", advice));
  }
  return absl::OkStatus();
}

absl::StatusOr<BackupReport> BackupDatabase(const std::string& db_path, const std::string& out_path) {
  std::error_code ec;
  if (!std::filesystem::exists(db_path, ec)) return absl::NotFoundError(absl::StrCat("no database ", db_path));
  if (std::filesystem::exists(out_path, ec) && std::filesystem::equivalent(db_path, out_path, ec)) {
    return absl::InvalidArgumentError("--out must not be the database itself");
  }
  Connection src, dst;
  // Read-write without create: a WAL database's reader needs its shared-memory file, and
  // the copy only reads.
  if (sqlite3_open_v2(db_path.c_str(), &src.db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    return absl::UnavailableError(absl::StrCat("cannot open ", db_path, ": ", sqlite3_errmsg(src.db)));
  }
  sqlite3_busy_timeout(src.db, 5000);
  const std::string tmp = out_path + ".tmp";
  std::filesystem::remove(tmp, ec);
  if (sqlite3_open_v2(tmp.c_str(), &dst.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) != SQLITE_OK) {
    return absl::UnavailableError(absl::StrCat("cannot create ", tmp, ": ", sqlite3_errmsg(dst.db)));
  }
  sqlite3_backup* backup = sqlite3_backup_init(dst.db, "main", src.db, "main");
  if (!backup) return absl::InternalError(absl::StrCat("backup of ", db_path, ": ", sqlite3_errmsg(dst.db)));
  // All pages in one step: one read transaction, so the copy is one consistent snapshot
  // while the coordinator goes on writing to the WAL.
  int rc = SQLITE_OK;
  for (int tries = 0; tries < 100; ++tries) {
    rc = sqlite3_backup_step(backup, -1);
    if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  BackupReport report;
  report.pages = sqlite3_backup_pagecount(backup);
  sqlite3_backup_finish(backup);
  if (rc != SQLITE_DONE) {
    std::filesystem::remove(tmp, ec);
    return absl::UnavailableError(absl::StrCat("backup of ", db_path, " failed: ", sqlite3_errstr(rc)));
  }
  const std::string check = PragmaText(dst.db, "PRAGMA integrity_check");
  sqlite3_close(dst.db);
  dst.db = nullptr;
  if (check != "ok") {
    std::filesystem::remove(tmp, ec);
    return absl::DataLossError(absl::StrCat("the copy of ", db_path, " fails integrity_check: ", check));
  }
  std::filesystem::rename(tmp, out_path, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("cannot rename ", tmp, " to ", out_path, ": ", ec.message()));
  report.bytes = static_cast<int64_t>(std::filesystem::file_size(out_path, ec));
  return report;
}

}  // namespace spriteforge::coordinator
