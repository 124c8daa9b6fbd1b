#include "tests/coordinator/store/store_backends.h"

#include <unistd.h>
#ifdef SPRITEFORGE_WITH_POSTGRES
#include <libpq-fe.h>
#endif

#include <atomic>
#include <cstdlib>
#include <filesystem>

namespace spriteforge::coordinator::testing {
namespace {

bool Run(const std::string& url, const std::string& sql, std::string* error) {
#ifndef SPRITEFORGE_WITH_POSTGRES
  *error = "built without libpq";
  return false;
#else
  PGconn* conn = PQconnectdb(url.c_str());
  bool ok = PQstatus(conn) == CONNECTION_OK;
  if (ok) {
    PQsetNoticeProcessor(conn, [](void*, const char*) {}, nullptr);  // "drop cascades to ..."
    PGresult* r = PQexec(conn, sql.c_str());
    ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) *error = PQresultErrorMessage(r);
    PQclear(r);
  } else {
    *error = PQerrorMessage(conn);
  }
  PQfinish(conn);
  return ok;
#endif
}

}  // namespace

std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::kSqlite ? "Sqlite" : "Postgres";
}

std::string TestPostgresUrl() {
  const char* url = std::getenv("SPRITEFORGE_TEST_POSTGRES");
  return url ? url : "";
}

TestDatabase::TestDatabase(Backend backend) : backend_(backend) {
  static std::atomic<int> counter{0};
  const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string unique = std::to_string(getpid()) + "_" + std::to_string(counter++);
  if (backend == Backend::kSqlite) {
    std::string name = test->name();  // "Case/Sqlite"
    for (char& c : name) {
      if (c == '/') c = '_';
    }
    spec_ = (std::filesystem::temp_directory_path() / ("store_" + unique + "_" + name + ".db")).string();
    std::filesystem::remove(spec_);
    return;
  }
  const std::string url = TestPostgresUrl();
  if (url.empty()) return;  // the caller skips
  schema_ = "test_" + unique;
  std::string error;
  if (!Run(url, "CREATE SCHEMA " + schema_, &error)) {
    ADD_FAILURE() << "cannot create schema " << schema_ << " on " << url << ": " << error;
    return;
  }
  spec_ = url + (url.find('?') == std::string::npos ? "?" : "&") + "options=-csearch_path%3D" + schema_;
}

TestDatabase::~TestDatabase() {
  if (backend_ == Backend::kSqlite) {
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(spec_ + suffix);
  } else if (!schema_.empty()) {
    std::string error;
    Run(TestPostgresUrl(), "DROP SCHEMA " + schema_ + " CASCADE", &error);
  }
}

}  // namespace spriteforge::coordinator::testing
