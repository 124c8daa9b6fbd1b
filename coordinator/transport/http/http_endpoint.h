// The coordinator's HTTP port: /metrics (Prometheus text format), /stats (JSON), /healthz
// (200 "ok" while the service loop is alive, else 503 with the reason), and the HTTP API
// and web page (coordinator/transport/http/).
// With TLS material it serves HTTPS; with a token table every route but /metrics, /healthz
// and the page's files needs "Authorization: Bearer TOKEN" (service/http_access). Before
// any of that, requests other web pages could send through the user's browser are refused
// (http/browser_safety), and every connection has its limits (service/http_connections).
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/transport/access/auth.h"
#include "coordinator/core/coordinator.h"
#include "coordinator/transport/access/gatekeeper.h"
#include "coordinator/transport/http/http_connections.h"
#include "coordinator/transport/access/tls.h"

namespace httplib {
class Server;
}

namespace spriteforge::coordinator {
namespace http {
class HttpApi;
}

// When /healthz says the coordinator is stuck (see Coordinator::CheckAlive).
struct HealthLimits {
  int64_t max_tick_age_ms = 10000;
  int64_t lock_timeout_ms = 2000;
};

struct HttpSecurity {
  TlsMaterial* tls = nullptr;  // null: plain HTTP
  Gatekeeper* gate = nullptr;  // tokens, roles, ownership and the submission rate (service/http_access)
};

// What the port accepts from clients and browsers (service/http_connections,
// http/browser_safety).
struct HttpEdge {
  ConnectionLimits connections;
  size_t max_body_bytes = 2 << 20;     // a manifest is at most 1 MiB; JSON wrapping adds some
  std::vector<std::string> host_allow;  // Host names served besides the defaults (--http-host-allow)
};

class HttpEndpoint {
 public:
  // Binds host:port (port 0 picks a free one) and serves on its own thread.
  static absl::StatusOr<std::unique_ptr<HttpEndpoint>> Start(Coordinator* core, const std::string& host, int port,
                                                             HealthLimits health = {}, HttpSecurity security = {},
                                                             HttpEdge edge = {});
  ~HttpEndpoint();
  int port() const { return port_; }

 private:
  HttpEndpoint() = default;
  std::unique_ptr<http::HttpApi> api_;  // outlives the server, whose routes use it
  std::unique_ptr<httplib::Server> server_;
  std::unique_ptr<ConnectionLoop> connections_;  // before server_ goes: its threads use it
  std::thread thread_;
  int port_ = 0;
};

}  // namespace spriteforge::coordinator
