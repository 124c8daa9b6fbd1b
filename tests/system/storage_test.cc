// The database under operations: a backup taken while a job runs is a sound, consistent
// copy; a coordinator refuses to start on a file that is not a sound database and leaves
// it exactly as it was.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <fstream>

#include "tests/system/cluster.h"

namespace spriteforge::testing {
namespace {

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// The first column of the first row of `sql`, as text.
std::string Query(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* stmt = nullptr;
  std::string out = "(error)";
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW) {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    out = text ? text : "";
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return out;
}

CommandResult StartOn(const std::string& db, const std::string& dir) {
  return RunCommand({SPRITEFORGE_COORDINATOR_BIN, "--listen", "127.0.0.1:0", "--db", db, "--output", dir + "/out",
                     "--http", "127.0.0.1:0"});
}

TEST(StorageTest, ABackupDuringAJobIsAConsistentCopy) {
  if (GoldenModel().empty()) GTEST_SKIP() << "golden folder missing: set SPRITEFORGE_GOLDEN";
  const std::string dir = TempDir("backup");
  Cluster cluster(dir);
  cluster.StartCoordinator();
  cluster.StartWorker("w1");
  std::ofstream(dir + "/job.yaml") << "name: b\nmodel: tiny-sdxl\ndefaults: {width: 64, height: 64, steps: 6}\n"
                                      "items: [{prompt: \"iron key\", count: 40, seed: 1}]\n";
  auto submitted = cluster.Client({"submit", dir + "/job.yaml"});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  const std::string job = Trim(submitted.out);
  auto running = cluster.WaitFor(job, [](const v1::Job& j) { return j.counts().done() >= 2; }, 120);
  ASSERT_GE(running.counts().done(), 2);

  const std::string copy = dir + "/copy.db";
  auto backup = RunCommand({SPRITEFORGE_COORDINATOR_BIN, "backup", "--db", dir + "/spriteforge.db", "--out", copy});
  ASSERT_EQ(backup.exit_code, 0) << backup.err;
  EXPECT_NE(backup.out.find("integrity_check ok"), std::string::npos) << backup.out;
  EXPECT_EQ(Query(copy, "PRAGMA integrity_check"), "ok");
  EXPECT_EQ(Query(copy, "SELECT COUNT(*) FROM items WHERE job_id = '" + job + "'"), "40");
  const int copied_done = std::stoi(Query(copy, "SELECT COUNT(*) FROM items WHERE state = 3"));
  EXPECT_GE(copied_done, 2);
  EXPECT_FALSE(std::filesystem::exists(copy + ".tmp"));

  auto done = cluster.WaitFor(job, [](const v1::Job& j) { return j.state() == v1::JOB_DONE; }, 240);
  EXPECT_EQ(done.state(), v1::JOB_DONE);
  EXPECT_LT(copied_done, 40) << "the copy was taken after the job, not during it";

  auto same = RunCommand({SPRITEFORGE_COORDINATOR_BIN, "backup", "--db", copy, "--out", copy});
  EXPECT_EQ(Trim(same.err), "spriteforge-coordinator: error: --out must not be the database itself");
}

TEST(StorageTest, ACorruptDatabaseIsRefusedAndNeverOverwritten) {
  const std::string dir = TempDir("corrupt");
  const std::string garbage = dir + "/garbage.db";
  std::ofstream(garbage, std::ios::binary) << std::string(3000, '\x5a') << "not a database";
  const std::string before = Slurp(garbage);
  auto refused = StartOn(garbage, dir);
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_EQ(Trim(refused.err), "spriteforge-coordinator: error: database " + garbage +
                                   " is not a SQLite database; the coordinator leaves it untouched: restore a "
                                   "backup or move it aside");
  EXPECT_EQ(Slurp(garbage), before);
  EXPECT_FALSE(std::filesystem::exists(garbage + "-wal"));

  // A real database with a damaged page in the middle.
  const std::string damaged = dir + "/damaged.db";
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(damaged.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "PRAGMA page_size=4096; CREATE TABLE t(x TEXT); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL "
                         "SELECT i+1 FROM n WHERE i < 3000) INSERT INTO t SELECT printf('%0100d', i) FROM n;",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  {
    std::fstream f(damaged, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4096 * 5 + 8);
    f << std::string(600, '\xff');
  }
  const std::string damaged_before = Slurp(damaged);
  auto refused_damaged = StartOn(damaged, dir);
  EXPECT_EQ(refused_damaged.exit_code, 1);
  EXPECT_EQ(Trim(refused_damaged.err).rfind("spriteforge-coordinator: error: database " + damaged + " is damaged (quick_check: ", 0), 0u)
      << refused_damaged.err;
  EXPECT_NE(refused_damaged.err.find("restore a backup or move it aside"), std::string::npos);
  EXPECT_EQ(Slurp(damaged), damaged_before);
}

}  // namespace
}  // namespace spriteforge::testing
