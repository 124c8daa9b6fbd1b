// Whether the addresses a coordinator is told to serve are protected enough to serve other
// machines. Every port on a loopback address serves this machine only and needs nothing.
// Elsewhere:
// - a gRPC port needs tokens (--auth), or TLS that asks every caller for a client
//   certificate (--tls-client-ca on the port workers use, the shared port included);
//   TLS alone encrypts but admits anyone, so it is refused;
// - the HTTP port needs tokens: it takes jobs and cancellations, and browsers never
//   present client certificates;
// - --insecure-listen is the operator's word that this coordinator serves others without
//   protection (a private network): it covers every port, the HTTP port included.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace spriteforge::coordinator {

struct Exposure {
  std::string listen;         // --listen, or --insecure-listen's address
  std::string worker_listen;  // --worker-listen; empty: workers share `listen`
  std::string http;           // --http
  bool insecure = false;      // --insecure-listen
  bool tls = false;           // --tls-cert
  bool client_ca = false;     // --tls-client-ca
  bool tokens = false;        // --auth
};

// Whether HOST:PORT binds only this machine (127.0.0.0/8, ::1, localhost).
bool IsLoopbackAddress(const std::string& address);

// OK, or INVALID_ARGUMENT with a one-line reason that names the flags that would serve.
absl::Status CheckExposure(const Exposure& exposure);

}  // namespace spriteforge::coordinator
