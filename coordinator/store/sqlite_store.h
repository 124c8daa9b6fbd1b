// The store in one SQLite file (WAL): the default backend, for one coordinator. Its
// statements are SqlStore's and its tables schema.h's; it adds opening (the schema version
// and the upgrade of older files), items inserted a row at a time through one prepared
// statement, and leases and results as a statement per item inside one transaction, which
// holds the whole database.
#pragma once

#include <memory>
#include <string>

#include "coordinator/store/sql_store.h"

namespace spriteforge::coordinator {

class Database;

class SqliteStore final : public SqlStore {
 public:
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& path);
  ~SqliteStore() override;
  std::string Backend() const override { return "sqlite"; }

  absl::Status Lease(const std::string& batch_id, const std::string& worker_id,
                     const std::vector<ItemKey>& items, int64_t expires_ms, int64_t now_ms) override;

 protected:
  std::unique_ptr<SqlTransaction> NewTransaction() override;
  absl::StatusOr<int64_t> Execute(const std::string& sql, const std::vector<SqlValue>& args) override;
  absl::Status Select(const std::string& sql, const std::vector<SqlValue>& args,
                      const std::function<void(const Row&)>& each) override;
  absl::Status InsertItemRows(const std::string& job_id, const std::vector<ItemRecord>& items) override;
  const char* LockRows() const override { return ""; }  // BEGIN IMMEDIATE holds the database
  const char* NowMs() const override;
  absl::Status RecordResults(const std::vector<Completion>& done, int64_t now_ms) override;

 private:
  explicit SqliteStore(std::unique_ptr<Database> db);
  std::unique_ptr<Database> db_;
};

}  // namespace spriteforge::coordinator
