// A thin layer over libpq: one connection, statements prepared once per connection and
// reused, parameters as text ($1, $2 ...), errors that carry PostgreSQL's message. A lost
// connection is re-established on the next call (the call that met it fails).
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "coordinator/store/rows.h"
#include "coordinator/store/transaction.h"

namespace spriteforge::coordinator {

// A query's rows; Next() moves to the first, then each following row.
class PgResult final : public Row {
 public:
  explicit PgResult(PGresult* result) : result_(result, &PQclear) {}
  bool Next() { return ++row_ < PQntuples(result_.get()); }
  int rows() const { return PQntuples(result_.get()); }
  // Rows an INSERT, UPDATE or DELETE changed.
  int64_t Affected() const;

  int64_t Int(int col) const override;
  double Double(int col) const override;
  std::string Text(int col) const override;
  std::optional<std::string> OptText(int col) const override;
  std::string Blob(int col) const override;

 private:
  std::unique_ptr<PGresult, decltype(&PQclear)> result_;
  int row_ = -1;
};

class PgConnection {
 public:
  static absl::StatusOr<std::unique_ptr<PgConnection>> Open(const std::string& url);
  ~PgConnection();

  // One statement with parameters, prepared on first use unless `prepare` is false (for
  // statements whose text varies, such as multi-row INSERTs, which would fill the cache).
  absl::StatusOr<PgResult> Query(const std::string& sql, const std::vector<SqlValue>& params = {},
                                 bool prepare = true);
  // Statements without parameters (several may be separated by ';').
  absl::Status Exec(const std::string& sql);
  // Run now and after every reconnection (a new session): session settings.
  absl::Status SetSessionSql(std::string sql);
  // The URL without its password, for messages.
  const std::string& name() const { return name_; }

 private:
  PgConnection(PGconn* conn, std::string name) : conn_(conn), name_(std::move(name)) {}
  absl::Status Reconnect();
  absl::Status Error(const std::string& what, PGresult* result);
  PGconn* conn_;
  std::string name_;
  std::string session_sql_;
  std::unordered_map<std::string, std::string> prepared_;  // SQL -> statement name
};

class PgTransaction final : public ScopedTransaction<PgConnection> {
 public:
  explicit PgTransaction(PgConnection& db) : ScopedTransaction(db, "BEGIN") {}
};

}  // namespace spriteforge::coordinator
