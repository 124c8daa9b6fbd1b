// The store suites run against each backend: SQLite on a temporary file, and PostgreSQL on
// the server named by SPRITEFORGE_TEST_POSTGRES (a postgresql:// URL; deploy/test.sh starts
// one and sets it). Each test gets an empty database of its own: a new file, or a new
// schema on the server, dropped afterwards. Without the variable the PostgreSQL cases skip.
#pragma once

#include <gtest/gtest.h>

#include <string>

namespace spriteforge::coordinator::testing {

enum class Backend { kSqlite, kPostgres };

std::string BackendName(const ::testing::TestParamInfo<Backend>& info);

// An empty store's --db value for the running test; removed (file or schema) on destruction.
class TestDatabase {
 public:
  // Empty spec() for PostgreSQL without SPRITEFORGE_TEST_POSTGRES (the caller skips with
  // SPRITEFORGE_SKIP_WITHOUT_POSTGRES) or after a failure, reported to gtest.
  explicit TestDatabase(Backend backend);
  ~TestDatabase();
  const std::string& spec() const { return spec_; }

 private:
  Backend backend_;
  std::string spec_;
  std::string schema_;  // PostgreSQL
};

// SPRITEFORGE_TEST_POSTGRES, or empty.
std::string TestPostgresUrl();

}  // namespace spriteforge::coordinator::testing

// In a test or SetUp: skips the PostgreSQL variant, saying why, when no server is named.
#define SPRITEFORGE_SKIP_WITHOUT_POSTGRES(backend)                                                   \
  if ((backend) == ::spriteforge::coordinator::testing::Backend::kPostgres &&                       \
      ::spriteforge::coordinator::testing::TestPostgresUrl().empty())                               \
  GTEST_SKIP() << "PostgreSQL variant skipped: SPRITEFORGE_TEST_POSTGRES is not set "               \
                  "(deploy/postgres.sh starts a throwaway server and sets it)"

// Both backends for a parameterized suite.
#define SPRITEFORGE_ALL_STORE_BACKENDS(suite)                                                          \
  INSTANTIATE_TEST_SUITE_P(Backends, suite,                                                            \
                           ::testing::Values(::spriteforge::coordinator::testing::Backend::kSqlite,    \
                                             ::spriteforge::coordinator::testing::Backend::kPostgres), \
                           ::spriteforge::coordinator::testing::BackendName)
