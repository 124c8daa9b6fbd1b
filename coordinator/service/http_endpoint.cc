#include "service/http_endpoint.h"

#include <httplib.h>

#include "absl/strings/str_cat.h"

namespace spriteforge::coordinator {

absl::StatusOr<std::unique_ptr<HttpEndpoint>> HttpEndpoint::Start(Coordinator* core, const std::string& host,
                                                                  int port) {
  std::unique_ptr<HttpEndpoint> endpoint(new HttpEndpoint());
  endpoint->server_ = std::make_unique<httplib::Server>();
  httplib::Server& server = *endpoint->server_;
  server.Get("/metrics", [core](const httplib::Request&, httplib::Response& res) {
    res.set_content(core->MetricsText(), "text/plain; version=0.0.4");
  });
  server.Get("/stats", [core](const httplib::Request&, httplib::Response& res) {
    res.set_content(core->StatsJson().dump(2) + "\n", "application/json");
  });
  server.Get("/healthz", [](const httplib::Request&, httplib::Response& res) { res.set_content("ok\n", "text/plain"); });
  const int bound = port == 0 ? server.bind_to_any_port(host) : (server.bind_to_port(host, port) ? port : -1);
  if (bound < 0) return absl::UnavailableError(absl::StrCat("cannot listen for HTTP on ", host, ":", port));
  endpoint->port_ = bound;
  endpoint->thread_ = std::thread([&server] { server.listen_after_bind(); });
  return endpoint;
}

HttpEndpoint::~HttpEndpoint() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace spriteforge::coordinator
