// A transaction on either backend's connection: begun when made, rolled back when destroyed
// unless Commit() succeeded. The backends differ only in the statement that begins it
// (SQLite takes the write lock at once with BEGIN IMMEDIATE).
#pragma once

#include "absl/status/status.h"

namespace spriteforge::coordinator {

class SqlTransaction {
 public:
  virtual ~SqlTransaction() = default;
  virtual absl::Status Commit() = 0;
  absl::Status status() const { return status_; }  // whether it began

 protected:
  absl::Status status_;
};

// `Connection` has absl::Status Exec(const std::string&).
template <class Connection>
class ScopedTransaction : public SqlTransaction {
 public:
  ScopedTransaction(Connection& db, const char* begin) : db_(db) {
    status_ = db_.Exec(begin);
    open_ = status_.ok();
  }
  ~ScopedTransaction() override {
    if (open_) db_.Exec("ROLLBACK").IgnoreError();
  }
  ScopedTransaction(const ScopedTransaction&) = delete;
  ScopedTransaction& operator=(const ScopedTransaction&) = delete;

  absl::Status Commit() override {
    if (!open_) return status_;
    open_ = false;
    return db_.Exec("COMMIT");
  }

 private:
  Connection& db_;
  bool open_ = false;
};

}  // namespace spriteforge::coordinator
