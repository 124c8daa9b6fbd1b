// The one place the gRPC layer learns who is calling: it reads the call's "authorization"
// metadata (and, for workers, the verified client certificate) and answers with a
// Principal or UNAUTHENTICATED / PERMISSION_DENIED. The HTTP port asks the same questions
// with its "Authorization" header (transport/http/http_access). Without a token table every call
// is anonymous and allowed, as on a loopback-only coordinator.
#pragma once

#include <grpcpp/grpcpp.h>

#include <string>
#include <vector>

#include "coordinator/transport/access/auth.h"

namespace spriteforge::coordinator {

// Which client certificates are workers' (--worker-cert-match): a subject attribute
// ("OU=spriteforge-worker", "CN=spark-1", "O=render-farm") or a subject alternative name
// ("URI:spiffe://farm/worker", "DNS:spark-1.farm"), compared exactly.
struct WorkerCertificateRule {
  std::string field;  // "OU", "CN", "O", "URI" or "DNS"
  std::string value;
};
absl::StatusOr<WorkerCertificateRule> ParseWorkerCertificateRule(const std::string& text);

// Authorize for a call on job `job_id` owned by `owner`. A caller who may not even read the
// job is answered as for a missing job (NOT_FOUND "no job ID", the store's words), so
// another owner's job ids cannot be probed; one who may read it (a viewer cancelling)
// gets PERMISSION_DENIED.
absl::Status AuthorizeJob(const Principal& who, Action action, const std::string& owner, const std::string& job_id);

// "ipv4:10.0.0.5:41234" -> "ipv4:10.0.0.5": one client per host, not per connection.
std::string PeerHost(const std::string& peer);

struct AccessOptions {
  const TokenTable* tokens = nullptr;  // null: no --auth
  int submits_per_minute = 0;          // per client unless its token sets its own; 0: no limit
  bool worker_certificates = false;    // verified client certificates may admit worker streams
  // With tokens, a certificate admits a worker only when it matches one of these; without
  // tokens, any certificate of --tls-client-ca does unless rules are given.
  std::vector<WorkerCertificateRule> worker_certificate_rules;
};

class Gatekeeper {
 public:
  explicit Gatekeeper(AccessOptions options = {}) : options_(options) {}

  // The caller of a client call; workers' tokens are refused here.
  absl::StatusOr<Principal> Caller(const grpc::ServerContextBase& ctx) const;
  // The same from an "authorization" value ("Bearer TOKEN", or empty).
  absl::StatusOr<Principal> CallerFor(const std::string& authorization) const;
  // Whether this call may open the worker stream, and if so the credential it proved:
  // "token NAME", "certificate SUBJECT", or the peer's host when it needed neither.
  // Quarantine holds this credential, so a new worker id does not escape it.
  absl::StatusOr<std::string> AdmitWorker(const grpc::ServerContextBase& ctx) const;
  // The per-client submission rate: the token's name, or the peer's host without tokens.
  absl::Status AllowSubmit(const Principal& who, const grpc::ServerContextBase& ctx);
  // The same for a client known by its address.
  absl::Status AllowSubmitFrom(const Principal& who, const std::string& peer_host);

 private:
  AccessOptions options_;
  RateLimiter submits_;
};

}  // namespace spriteforge::coordinator
