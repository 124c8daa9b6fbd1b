#include "coordinator/service/http_endpoint.h"

#include <httplib.h>
#include <sys/socket.h>

#include "absl/strings/str_cat.h"
#include "coordinator/http/http_api.h"
#include "coordinator/http/http_json.h"
#include "coordinator/service/http_access.h"

namespace spriteforge::coordinator {

absl::StatusOr<std::unique_ptr<HttpEndpoint>> HttpEndpoint::Start(Coordinator* core, const std::string& host,
                                                                  int port, HealthLimits health,
                                                                  HttpSecurity security) {
  std::unique_ptr<HttpEndpoint> endpoint(new HttpEndpoint());
  if (security.tls) {
    TlsMaterial* tls = security.tls;
    endpoint->server_ = std::make_unique<httplib::SSLServer>([tls](SSL_CTX& ctx) { return tls->SetupHttp(ctx); });
    if (!endpoint->server_->is_valid()) return absl::InternalError("cannot set up TLS for the HTTP port");
  } else {
    endpoint->server_ = std::make_unique<httplib::Server>();
  }
  httplib::Server& server = *endpoint->server_;
  // httplib shares ports (SO_REUSEPORT) by default; a port in use must be an error, so a
  // second coordinator cannot start beside the first. SO_REUSEADDR still allows a quick
  // restart on the same port.
  server.set_socket_options([](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  if (Gatekeeper* gate = security.gate) {
    // Before the body is read: a refused upload costs nothing.
    server.set_pre_routing_handler([gate, core](const httplib::Request& req, httplib::Response& res) {
      const absl::Status s =
          CheckHttpAccess(*gate, *core, req.method, req.path, req.get_header_value("Authorization"), req.remote_addr);
      if (s.ok()) return httplib::Server::HandlerResponse::Unhandled;
      http::ReplyError(res, s);
      return httplib::Server::HandlerResponse::Handled;
    });
  }
  endpoint->api_ = std::make_unique<http::HttpApi>(core, http::HttpApiOptions{});
  endpoint->api_->SetGatekeeper(security.gate);
  endpoint->api_->Register(server);
  server.Get("/metrics", [core](const httplib::Request&, httplib::Response& res) {
    res.set_content(core->MetricsText(), "text/plain; version=0.0.4");
  });
  server.Get("/stats", [core](const httplib::Request&, httplib::Response& res) {
    res.set_content(http::ProtoJson(core->Stats()) + "\n", "application/json");
  });
  server.Get("/healthz", [core, health](const httplib::Request&, httplib::Response& res) {
    const absl::Status alive = core->CheckAlive(health.max_tick_age_ms, health.lock_timeout_ms);
    res.status = alive.ok() ? 200 : 503;
    res.set_content(alive.ok() ? "ok\n" : std::string(alive.message()) + "\n", "text/plain");
  });
  const int bound = port == 0 ? server.bind_to_any_port(host) : (server.bind_to_port(host, port) ? port : -1);
  if (bound < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen for HTTP on ", host, ":", port, ": address in use or not available"));
  }
  endpoint->port_ = bound;
  endpoint->thread_ = std::thread([&server] { server.listen_after_bind(); });
  return endpoint;
}

HttpEndpoint::~HttpEndpoint() {
  if (api_) api_->Stop();  // open event streams and blocking calls return, so threads join
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace spriteforge::coordinator
