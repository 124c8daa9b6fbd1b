#include "coordinator/transport/access/exposure.h"

#include <arpa/inet.h>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace spriteforge::coordinator {

bool IsLoopbackAddress(const std::string& address) {
  if (address.rfind("unix:", 0) == 0) return true;  // a socket file on this machine
  const size_t colon = address.rfind(':');
  std::string host = colon == std::string::npos ? address : address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host == "localhost" || host == "::1") return true;
  in_addr v4{};
  return inet_pton(AF_INET, host.c_str(), &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127;
}

namespace {

// A gRPC port other machines reach: who may call it.
absl::Status CheckGrpcPort(const std::string& address, bool asks_certificates, const Exposure& e) {
  if (e.tokens || IsLoopbackAddress(address)) return absl::OkStatus();
  if (!e.tls) {
    return absl::InvalidArgumentError(
        absl::StrCat(address, ": without --tls-cert or --auth the coordinator serves this machine only (127.0.0.1, "
                              "::1); use --insecure-listen ",
                     address, " to serve others without them"));
  }
  if (asks_certificates) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(address, ": --tls-cert without --auth encrypts but admits anyone who reaches this port; add --auth "
                            "(tokens) to serve other machines"));
}

}  // namespace

absl::Status CheckExposure(const Exposure& e) {
  if (e.insecure) return absl::OkStatus();
  // With a client CA the worker port asks for certificates; the client port does too
  // only where workers share it.
  const bool shared = e.worker_listen.empty();
  RETURN_IF_ERROR(CheckGrpcPort(e.listen, shared && e.tls && e.client_ca, e));
  if (!shared) {
    RETURN_IF_ERROR(CheckGrpcPort(e.worker_listen, e.tls && e.client_ca, e));
  }
  if (!e.http.empty() && !e.tokens && !IsLoopbackAddress(e.http)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--http ", e.http, ": without --auth anyone who reaches this address can submit, cancel and read "
                     "every job; serve HTTP on 127.0.0.1, add --auth, or use --insecure-listen instead of --listen to "
                     "serve others without tokens"));
  }
  return absl::OkStatus();
}

}  // namespace spriteforge::coordinator
