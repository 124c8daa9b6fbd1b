#include "coordinator/store/store.h"

#include "absl/strings/match.h"
#include "coordinator/store/sqlite_store.h"
#ifdef SPRITEFORGE_WITH_POSTGRES
#include "coordinator/store/postgres_store.h"
#endif

namespace spriteforge::coordinator {

bool IsPostgresUrl(const std::string& spec) {
  return absl::StartsWith(spec, "postgresql://") || absl::StartsWith(spec, "postgres://");
}

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& spec) {
  if (!IsPostgresUrl(spec)) return SqliteStore::Open(spec);
#ifdef SPRITEFORGE_WITH_POSTGRES
  return PostgresStore::Open(spec);
#else
  return absl::UnimplementedError(
      "--db: this coordinator was built without PostgreSQL (install libpq-dev and reconfigure); "
      "use a SQLite file path");
#endif
}

}  // namespace spriteforge::coordinator
