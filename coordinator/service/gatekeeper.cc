#include "coordinator/service/gatekeeper.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace spriteforge::coordinator {
namespace {

std::string Authorization(const grpc::ServerContextBase& ctx) {
  const auto& metadata = ctx.client_metadata();
  auto it = metadata.find("authorization");
  return it == metadata.end() ? "" : std::string(it->second.data(), it->second.size());
}

// "ipv4:10.0.0.5:41234" -> "ipv4:10.0.0.5": one bucket per host, not per connection.
std::string PeerHost(const std::string& peer) {
  const size_t colon = peer.rfind(':');
  return colon == std::string::npos || colon < 5 ? peer : peer.substr(0, colon);
}

}  // namespace

absl::StatusOr<Principal> Gatekeeper::Caller(const grpc::ServerContextBase& ctx) const {
  return CallerFor(Authorization(ctx));
}

absl::StatusOr<Principal> Gatekeeper::CallerFor(const std::string& authorization) const {
  if (!options_.tokens) return Principal{};
  auto who = options_.tokens->Authenticate(authorization);
  if (!who.ok()) return who.status();
  if (who->role == Role::kWorker) {
    return absl::PermissionDeniedError(
        absl::StrCat("token '", who->name, "' (worker) may only connect as a worker, not call the client API"));
  }
  return who;
}

absl::Status Gatekeeper::AdmitWorker(const grpc::ServerContextBase& ctx) const {
  const std::string authorization = Authorization(ctx);
  if (options_.worker_certificates && authorization.empty()) {
    // gRPC verified the certificate against --tls-client-ca during the handshake.
    auto auth = ctx.auth_context();
    if (auth && auth->IsPeerAuthenticated()) return absl::OkStatus();
  }
  if (!options_.tokens) {
    if (options_.worker_certificates) {
      return absl::UnauthenticatedError("workers need a client certificate signed by --tls-client-ca");
    }
    return absl::OkStatus();
  }
  if (authorization.empty()) {
    return absl::UnauthenticatedError("workers need a worker token: pass --token or set SPRITEFORGE_TOKEN");
  }
  ASSIGN_OR_RETURN(auto who, options_.tokens->Authenticate(authorization));
  return Authorize(who, Action::kWorkerStream);
}

absl::Status Gatekeeper::AllowSubmit(const Principal& who, const grpc::ServerContextBase& ctx) {
  return AllowSubmitFrom(who, PeerHost(ctx.peer()));
}

absl::Status Gatekeeper::AllowSubmitFrom(const Principal& who, const std::string& peer_host) {
  const int per_minute = who.limits.submits_per_minute > 0 ? who.limits.submits_per_minute : options_.submits_per_minute;
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now().time_since_epoch()).count();
  return submits_.Allow(who.anonymous ? peer_host : who.name, per_minute, now);
}

}  // namespace spriteforge::coordinator
