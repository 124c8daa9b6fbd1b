#include "coordinator/transport/http/http_endpoint.h"

#include <httplib.h>
#include <sys/socket.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "coordinator/transport/http/browser_safety.h"
#include "coordinator/transport/http/http_api.h"
#include "coordinator/transport/http/http_json.h"
#include "coordinator/transport/http/http_access.h"

namespace spriteforge::coordinator {
namespace {

// Refuses, answering in `res`, what may not reach a route: requests another web page may
// have sent (http/browser_safety), bodies over the limit by their Content-Length, and
// callers without the token the route needs. A refused request's body is never read, so
// its connection closes after the reply.
absl::Status CheckRequest(const httplib::Request& req, const std::vector<std::string>& hosts, size_t max_body,
                          Gatekeeper* gate, Coordinator* core, httplib::Response& res) {
  const bool has_body = http::RequestHasBody(req);
  RequestHeadersRead(has_body);
  auto refuse = [&](int status, absl::Status reason) {
    http::ReplyError(res, reason);
    res.status = status;
    if (has_body) {
      CloseAfterResponse();
      res.set_header("Connection", "close");
    }
    return reason;
  };
  const http::BrowserRefusal browser = http::CheckBrowserSafety(
      {req.method, req.get_header_value("Host"), req.get_header_value("Origin"), req.get_header_value("Sec-Fetch-Site"),
       req.get_header_value("Sec-Fetch-Mode"), req.get_header_value("Content-Type"), has_body},
      hosts);
  if (browser.refused()) return refuse(browser.status, browser.reason);
  uint64_t length = 0;
  if (absl::SimpleAtoi(req.get_header_value("Content-Length"), &length) && length > max_body) {
    return refuse(413, absl::ResourceExhaustedError(absl::StrCat("the request body exceeds ", max_body, " bytes")));
  }
  if (gate) {
    const absl::Status s =
        CheckHttpAccess(*gate, *core, req.method, req.path, req.get_header_value("Authorization"), req.remote_addr);
    if (!s.ok()) return refuse(http::HttpStatusFor(s.code()), s);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpEndpoint>> HttpEndpoint::Start(Coordinator* core, const std::string& host,
                                                                  int port, HealthLimits health,
                                                                  HttpSecurity security, HttpEdge edge) {
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
  const std::vector<std::string> hosts = http::DefaultAllowedHosts(host, edge.host_allow);
  const size_t max_body = edge.max_body_bytes;
  // After the headers, before the body is read: a refused upload costs nothing.
  server.set_pre_routing_handler([gate = security.gate, core, hosts, max_body](const httplib::Request& req,
                                                                              httplib::Response& res) {
    const absl::Status s = CheckRequest(req, hosts, max_body, gate, core, res);
    return s.ok() ? httplib::Server::HandlerResponse::Unhandled : httplib::Server::HandlerResponse::Handled;
  });
  server.set_post_routing_handler([](const httplib::Request&, httplib::Response& res) {
    res.set_header("Content-Security-Policy", http::kContentSecurityPolicy);
    res.set_header("X-Frame-Options", "DENY");
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("Referrer-Policy", "no-referrer");
  });
  server.set_logger([](const httplib::Request&, const httplib::Response&) { ResponseSent(); });
  http::HttpApiOptions api_options;
  api_options.max_body_bytes = max_body;
  endpoint->api_ = std::make_unique<http::HttpApi>(core, api_options);
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
  endpoint->connections_ = std::make_unique<ConnectionLoop>(server, edge.connections);
  endpoint->thread_ = std::thread([loop = endpoint->connections_.get()] { loop->Run(); });
  return endpoint;
}

HttpEndpoint::~HttpEndpoint() {
  if (api_) api_->Stop();  // open event streams and blocking calls return, so threads join
  if (connections_) connections_->Stop();
  if (thread_.joinable()) thread_.join();
  connections_.reset();  // waits for the connections' threads
}

}  // namespace spriteforge::coordinator
