// The store in PostgreSQL: one database several coordinators share (one leads, the others
// stand by; see the leader lease in store.h). Its statements are SqlStore's, with rows a
// transaction will change locked FOR UPDATE, and its tables schema.h's; it adds opening
// (the schema under a lock, session settings), items inserted several hundred rows per
// statement, and one statement per lease and per group of results: a lease takes its items
// with SELECT ... FOR UPDATE SKIP LOCKED, so it never waits on rows another transaction
// holds.
#pragma once

#include <memory>
#include <string>

#include "coordinator/store/sql_store.h"

namespace spriteforge::coordinator {

class PgConnection;

class PostgresStore final : public SqlStore {
 public:
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& url);
  ~PostgresStore() override;
  std::string Backend() const override { return "postgresql"; }

  absl::Status Lease(const std::string& batch_id, const std::string& worker_id,
                     const std::vector<ItemKey>& items, int64_t expires_ms, int64_t now_ms) override;

 protected:
  std::unique_ptr<SqlTransaction> NewTransaction() override;
  absl::StatusOr<int64_t> Execute(const std::string& sql, const std::vector<SqlValue>& args) override;
  absl::Status Select(const std::string& sql, const std::vector<SqlValue>& args,
                      const std::function<void(const Row&)>& each) override;
  absl::Status InsertItemRows(const std::string& job_id, const std::vector<ItemRecord>& items) override;
  const char* LockRows() const override { return " FOR UPDATE"; }
  const char* ShareRow() const override { return " FOR SHARE"; }
  const char* NowMs() const override;
  absl::Status RecordResults(const std::vector<Completion>& done, int64_t now_ms) override;
  absl::StatusOr<std::set<ResultKey>> LockRunning(const std::vector<Completion>& done) override;
  int64_t IdleTransactionLimitMs() const override { return idle_limit_ms_; }

 private:
  explicit PostgresStore(std::unique_ptr<PgConnection> db);
  std::unique_ptr<PgConnection> db_;
  int64_t idle_limit_ms_ = 0;  // the session's idle_in_transaction_session_timeout
};

}  // namespace spriteforge::coordinator
