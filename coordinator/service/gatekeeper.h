// The one place the gRPC layer learns who is calling: it reads the call's "authorization"
// metadata (and, for workers, the verified client certificate) and answers with a
// Principal or UNAUTHENTICATED / PERMISSION_DENIED. The HTTP port asks the same questions
// with its "Authorization" header (service/http_access). Without a token table every call
// is anonymous and allowed, as on a loopback-only coordinator.
#pragma once

#include <grpcpp/grpcpp.h>

#include "coordinator/service/auth.h"

namespace spriteforge::coordinator {

struct AccessOptions {
  const TokenTable* tokens = nullptr;  // null: no --auth
  int submits_per_minute = 0;          // per client unless its token sets its own; 0: no limit
  bool worker_certificates = false;    // a verified client certificate admits a worker stream
};

class Gatekeeper {
 public:
  explicit Gatekeeper(AccessOptions options = {}) : options_(options) {}

  // The caller of a client call; workers' tokens are refused here.
  absl::StatusOr<Principal> Caller(const grpc::ServerContextBase& ctx) const;
  // The same from an "authorization" value ("Bearer TOKEN", or empty).
  absl::StatusOr<Principal> CallerFor(const std::string& authorization) const;
  // Whether this call may open the worker stream.
  absl::Status AdmitWorker(const grpc::ServerContextBase& ctx) const;
  // The per-client submission rate: the token's name, or the peer's host without tokens.
  absl::Status AllowSubmit(const Principal& who, const grpc::ServerContextBase& ctx);
  // The same for a client known by its address.
  absl::Status AllowSubmitFrom(const Principal& who, const std::string& peer_host);

 private:
  AccessOptions options_;
  RateLimiter submits_;
};

}  // namespace spriteforge::coordinator
