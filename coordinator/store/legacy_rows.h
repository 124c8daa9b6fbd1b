// Databases made by earlier versions: columns added since get their defaults, and the
// per-field image parameter columns (prompt, width, sampler, ..., the workflow JSON) and
// the postprocess JSON become the serialized messages the store keeps now. Runs once, in
// one transaction, when such a database is opened.
#pragma once

#include "absl/status/status.h"
#include "coordinator/store/sqlite.h"

namespace spriteforge::coordinator {

absl::Status AddMissingColumn(Database& db, const char* table, const char* column, const char* definition);
absl::Status UpgradeLegacyRows(Database& db);

}  // namespace spriteforge::coordinator
