#include "coordinator/store/postgres.h"

#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"

namespace spriteforge::coordinator {
namespace {

// postgresql://user:secret@host/db -> postgresql://user@host/db
std::string WithoutPassword(const std::string& url) {
  const size_t scheme = url.find("://");
  const size_t at = url.find('@');
  if (scheme == std::string::npos || at == std::string::npos || at < scheme) return url;
  const size_t colon = url.find(':', scheme + 3);
  if (colon == std::string::npos || colon > at) return url;
  return url.substr(0, colon) + url.substr(at);
}

std::string Trimmed(const char* message) {
  std::string s = message ? message : "unknown error";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  for (char& c : s) {
    if (c == '\n') c = ' ';
  }
  return s;
}

}  // namespace

int64_t PgResult::Affected() const {
  const char* n = PQcmdTuples(result_.get());
  return n && *n ? std::strtoll(n, nullptr, 10) : 0;
}
int64_t PgResult::Int(int col) const {
  return std::strtoll(PQgetvalue(result_.get(), row_, col), nullptr, 10);
}
double PgResult::Double(int col) const { return std::strtod(PQgetvalue(result_.get(), row_, col), nullptr); }
std::string PgResult::Text(int col) const {
  return std::string(PQgetvalue(result_.get(), row_, col), PQgetlength(result_.get(), row_, col));
}
std::string PgResult::Blob(int col) const {
  // Results come as text, where BYTEA is escaped ("\x" and hex digits).
  size_t n = 0;
  unsigned char* bytes =
      PQunescapeBytea(reinterpret_cast<const unsigned char*>(PQgetvalue(result_.get(), row_, col)), &n);
  if (!bytes) return std::string();
  std::string out(reinterpret_cast<const char*>(bytes), n);
  PQfreemem(bytes);
  return out;
}
std::optional<std::string> PgResult::OptText(int col) const {
  if (PQgetisnull(result_.get(), row_, col)) return std::nullopt;
  return Text(col);
}

absl::StatusOr<std::unique_ptr<PgConnection>> PgConnection::Open(const std::string& url) {
  PGconn* conn = PQconnectdb(url.c_str());
  const std::string name = WithoutPassword(url);
  if (!conn || PQstatus(conn) != CONNECTION_OK) {
    const std::string msg = conn ? Trimmed(PQerrorMessage(conn)) : "out of memory";
    PQfinish(conn);
    return absl::UnavailableError(absl::StrCat("cannot connect to ", name, ": ", msg));
  }
  std::unique_ptr<PgConnection> out(new PgConnection(conn, name));
  // Notices (e.g. "relation already exists, skipping") are not for the coordinator's log.
  PQsetNoticeProcessor(conn, [](void*, const char*) {}, nullptr);
  return out;
}

PgConnection::~PgConnection() { PQfinish(conn_); }

absl::Status PgConnection::Reconnect() {
  PQreset(conn_);
  prepared_.clear();  // a new session has none
  if (PQstatus(conn_) != CONNECTION_OK) {
    return absl::UnavailableError(absl::StrCat("postgresql ", name_, ": ", Trimmed(PQerrorMessage(conn_))));
  }
  return session_sql_.empty() ? absl::OkStatus() : Exec(session_sql_);
}

absl::Status PgConnection::SetSessionSql(std::string sql) {
  session_sql_ = std::move(sql);
  return Exec(session_sql_);
}

absl::Status PgConnection::Error(const std::string& what, PGresult* result) {
  const char* state = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  const std::string msg = absl::StrCat("postgresql: ", Trimmed(result ? PQresultErrorMessage(result) : PQerrorMessage(conn_)),
                                       " in: ", what);
  if (PQstatus(conn_) != CONNECTION_OK) return absl::UnavailableError(msg);
  // 53xxx: out of disk, memory or connections; the operator's to fix, as with SQLite.
  if (state && std::strncmp(state, "53", 2) == 0) return absl::ResourceExhaustedError(msg);
  return absl::InternalError(msg);
}

absl::StatusOr<PgResult> PgConnection::Query(const std::string& sql, const std::vector<SqlValue>& params,
                                             bool prepare) {
  if (PQstatus(conn_) != CONNECTION_OK) {
    RETURN_IF_ERROR(Reconnect());
  }
  auto it = prepared_.find(sql);
  if (prepare && it == prepared_.end()) {
    const std::string name = absl::StrCat("s", prepared_.size());
    PGresult* prep = PQprepare(conn_, name.c_str(), sql.c_str(), static_cast<int>(params.size()), nullptr);
    if (PQresultStatus(prep) != PGRES_COMMAND_OK) {
      absl::Status s = Error(sql, prep);
      PQclear(prep);
      return s;
    }
    PQclear(prep);
    it = prepared_.emplace(sql, name).first;
  }
  std::vector<std::string> text(params.size());
  std::vector<const char*> values(params.size(), nullptr);
  // Bytes go in binary format (no escaping), everything else as text.
  std::vector<int> lengths(params.size(), 0);
  std::vector<int> formats(params.size(), 0);
  for (size_t i = 0; i < params.size(); ++i) {
    const SqlValue& v = params[i];
    if (const auto* n = std::get_if<int64_t>(&v)) {
      text[i] = absl::StrCat(*n);
    } else if (const auto* d = std::get_if<double>(&v)) {
      text[i] = absl::StrFormat("%.17g", *d);
    } else if (const auto* t = std::get_if<std::string>(&v)) {
      text[i] = *t;
    } else if (const auto* b = std::get_if<SqlBytes>(&v)) {
      values[i] = b->bytes.data();
      lengths[i] = static_cast<int>(b->bytes.size());
      formats[i] = 1;
      continue;
    } else {
      continue;  // NULL
    }
    values[i] = text[i].c_str();
  }
  const int n = static_cast<int>(params.size());
  PGresult* result =
      prepare ? PQexecPrepared(conn_, it->second.c_str(), n, values.data(), lengths.data(), formats.data(), 0)
              : PQexecParams(conn_, sql.c_str(), n, nullptr, values.data(), lengths.data(), formats.data(), 0);
  const ExecStatusType status = PQresultStatus(result);
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    absl::Status s = Error(sql, result);
    PQclear(result);
    return s;
  }
  return PgResult(result);
}

absl::Status PgConnection::Exec(const std::string& sql) {
  if (PQstatus(conn_) != CONNECTION_OK) {
    RETURN_IF_ERROR(Reconnect());
  }
  PGresult* result = PQexec(conn_, sql.c_str());
  const ExecStatusType status = PQresultStatus(result);
  absl::Status s = status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK ? absl::OkStatus() : Error(sql, result);
  PQclear(result);
  return s;
}

}  // namespace spriteforge::coordinator
