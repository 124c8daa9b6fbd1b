// The coordinator's HTTP port: /metrics (Prometheus text format), /stats (JSON), /healthz
// (200 "ok" while the service loop is alive, else 503 with the reason), and the HTTP API
// and web page (coordinator/http/).
// With TLS material it serves HTTPS; with a token table /stats needs a client token
// ("Authorization: Bearer ..."), while /metrics and /healthz stay open for scrapers and
// probes (they carry counts and gauges, no job names, prompts or results).
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "service/auth.h"
#include "service/coordinator.h"
#include "service/tls.h"

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
  TlsMaterial* tls = nullptr;          // null: plain HTTP
  const TokenTable* tokens = nullptr;  // null: /stats open
};

class HttpEndpoint {
 public:
  // Binds host:port (port 0 picks a free one) and serves on its own thread.
  static absl::StatusOr<std::unique_ptr<HttpEndpoint>> Start(Coordinator* core, const std::string& host, int port,
                                                             HealthLimits health = {}, HttpSecurity security = {});
  ~HttpEndpoint();
  int port() const { return port_; }

 private:
  HttpEndpoint() = default;
  std::unique_ptr<http::HttpApi> api_;  // outlives the server, whose routes use it
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace spriteforge::coordinator
