// Who may do what: the token table of `--auth FILE`, the roles' permissions and each
// name's limits (enforced by the core: core/limits.h). Pure (no gRPC): the gRPC layer
// (transport/access/gatekeeper) reads the call's metadata and asks these.
//
//   tokens:
//     - {name: alice, token: "...", role: submitter, max_queued_images: 1000}
//     - {name: ci, token_sha256: "<hex of sha256(token)>", role: admin}
//     - {name: gpu, token: "...", role: worker}
//   defaults: {max_queued_images: 10000, max_running_jobs: 20, submits_per_minute: 60,
//              max_upload_mb: 20480, uploads_per_minute: 600}
//
// A job belongs to the name of the token that submitted it. Submitters see, watch, cancel
// and fetch only their own jobs; viewers read every job; admins do everything; worker
// tokens only open the worker stream.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "coordinator/core/limits.h"

namespace spriteforge::coordinator {

enum class Role { kSubmitter, kViewer, kAdmin, kWorker };
const char* RoleName(Role role);

struct Principal {
  std::string name;  // owner of the jobs it submits; empty without --auth
  Role role = Role::kAdmin;
  ClientLimits limits;
  bool anonymous = true;  // no token table: every call may do everything
};

class TokenTable {
 public:
  // Parses an auth file's text; errors are "FILE: tokens[2].role: ..." one-liners.
  static absl::StatusOr<TokenTable> Parse(const std::string& yaml, const std::string& file);
  static absl::StatusOr<TokenTable> Load(const std::string& path);

  // `authorization`: the call's "authorization" value ("Bearer TOKEN"), empty if absent.
  // Safe to call while another thread reloads.
  absl::StatusOr<Principal> Authenticate(const std::string& authorization) const;
  size_t size() const;

  // Replaces the tokens with those of `path` (SIGHUP). A file that does not load changes
  // nothing and its error is returned; calls in flight finish with the table they began with.
  absl::Status Reload(const std::string& path);

 private:
  using ByHash = std::map<std::string, Principal>;  // sha256 hex of the token -> who
  std::shared_ptr<const ByHash> Current() const;

  // Swapped whole under mu_ by Reload, so a lookup never sees half a table.
  mutable std::shared_ptr<std::mutex> mu_ = std::make_shared<std::mutex>();
  std::shared_ptr<const ByHash> by_hash_ = std::make_shared<ByHash>();
};

enum class Action {
  kSubmit,      // SubmitJob
  kReadJob,     // GetJob, WatchJob, FetchResults of a job owned by `owner`
  kCancelJob,   // CancelJob of a job owned by `owner`
  kReadFleet,   // ListJobs (filtered for submitters), ListWorkers, GetStats, /stats
  kWorkerStream,
};

// OK, or PERMISSION_DENIED naming the principal, its role and what it may not do.
absl::Status Authorize(const Principal& who, Action action, const std::string& owner = "", const std::string& job_id = "");

// Whether ListJobs shows every job to `who` (else only its own).
bool SeesAllJobs(const Principal& who);

}  // namespace spriteforge::coordinator
