// A thin RAII layer over the SQLite C API: one connection, prepared statements with
// positional binding, and errors that carry SQLite's message.
#pragma once

#include <sqlite3.h>

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

class Database;

class Statement final : public Row {
 public:
  Statement(sqlite3* db, const char* sql);
  // Prepared once per connection and reused: the hot paths run the same few statements
  // thousands of times a second, and preparing costs more than running them.
  Statement(Database& db, const char* sql);
  ~Statement() override;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Binding is positional from 1; returns *this so calls chain.
  Statement& Bind(int i, int64_t v);
  Statement& Bind(int i, int v) { return Bind(i, static_cast<int64_t>(v)); }
  Statement& Bind(int i, double v);
  Statement& Bind(int i, const std::string& v);
  Statement& Bind(int i, const std::optional<std::string>& v);
  Statement& BindNull(int i);
  Statement& BindBlob(int i, const std::string& bytes);
  Statement& Bind(int i, const SqlValue& v);

  // Steps once: true while a row is available, false when done; errors become status().
  bool Step();
  absl::Status Run();  // steps to completion

  int64_t Int(int col) const override;
  double Double(int col) const override;
  std::string Text(int col) const override;
  std::optional<std::string> OptText(int col) const override;
  std::string Blob(int col) const override;

  absl::Status status() const { return status_; }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  Database* cache_ = nullptr;  // returns stmt_ there instead of finalizing it
  absl::Status status_;
};

class Database {
 public:
  static absl::StatusOr<std::unique_ptr<Database>> Open(const std::string& path);
  ~Database();

  absl::Status Exec(const std::string& sql);
  sqlite3* raw() { return db_; }
  int64_t Changes() const { return sqlite3_changes64(db_); }

 private:
  friend class Statement;
  explicit Database(sqlite3* db) : db_(db) {}
  sqlite3_stmt* Checkout(const char* sql);  // null on a preparation error
  void Return(sqlite3_stmt* stmt);
  sqlite3* db_;
  // Idle prepared statements by SQL text; one in use is taken out, so nested uses of the
  // same text get their own.
  std::unordered_map<std::string, std::vector<sqlite3_stmt*>> idle_;
};

// BEGIN IMMEDIATE ... COMMIT: the write lock is taken at once, so a transaction never
// fails half-way for want of it.
class Transaction final : public ScopedTransaction<Database> {
 public:
  explicit Transaction(Database& db) : ScopedTransaction(db, "BEGIN IMMEDIATE") {}
};

}  // namespace spriteforge::coordinator
