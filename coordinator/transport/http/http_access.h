// Who may call which route of the HTTP port, with the same tokens, roles and ownership as
// the gRPC API: /metrics, /healthz and the web page's files are open; submitting needs a
// submitter or admin token (and counts against the submission rate); a job's routes need
// its owner, a viewer or an admin (cancelling: its owner or an admin); everything else a
// client token.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "coordinator/core/coordinator.h"
#include "coordinator/transport/access/gatekeeper.h"

namespace spriteforge::coordinator {

enum class HttpRoute { kOpen, kSubmit, kReadJob, kCancelJob, kReadFleet };

struct HttpTarget {
  HttpRoute route = HttpRoute::kReadFleet;
  std::string job_id;  // for kReadJob and kCancelJob
};

HttpTarget ClassifyHttpRequest(const std::string& method, const std::string& path);

// OK, or UNAUTHENTICATED / PERMISSION_DENIED / RESOURCE_EXHAUSTED (submission rate).
absl::Status CheckHttpAccess(Gatekeeper& gate, Coordinator& core, const std::string& method, const std::string& path,
                             const std::string& authorization, const std::string& peer_host);

}  // namespace spriteforge::coordinator
