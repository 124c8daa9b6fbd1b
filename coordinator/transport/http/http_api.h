// The coordinator's HTTP API on the same port as /metrics: native REST (/v1/jobs...,
// /v1/workers, Server-Sent Events), A1111-compatible /sdapi/v1/..., OpenAI-compatible
// /v1/images/generations, ComfyUI-compatible /prompt, /history, /view... and the web page at /.
// Every route only translates to the Coordinator's client methods, so HTTP jobs share the
// queue, planner and validation of gRPC jobs.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

#include "coordinator/core/coordinator.h"
#include "coordinator/transport/access/gatekeeper.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}

namespace spriteforge::coordinator::http {

struct HttpApiOptions {
  size_t max_body_bytes = 2 << 20;           // a manifest is at most 1 MiB; JSON wrapping adds some
  int max_sync_images = 64;                  // images one blocking txt2img/generations call may ask for
  std::chrono::seconds sync_timeout{900};    // how long a blocking call waits for its job
  std::chrono::seconds sse_keepalive{15};    // comment lines that keep idle event streams open
  // Each event stream and blocking call holds its connection's thread for as long as it
  // lasts; past these counts new ones are refused (429).
  int max_event_streams = 32;
  int max_sync_calls = 16;
};

// One held thread of a limited kind; released when the last copy goes.
using Slot = std::shared_ptr<void>;

// State shared by the routes; lives as long as the server that calls them.
class HttpApi {
 public:
  HttpApi(Coordinator* core, HttpApiOptions options) : core_(core), options_(options) {}

  // Adds every route, the JSON error handler and the body size limit to `server`.
  void Register(httplib::Server& server);
  // A POST route whose body is read here, at most max_body_bytes of it: httplib 0.11 limits
  // only bodies that declare a Content-Length, and reads a chunked one whole. Past the
  // limit the reply is 413 and the connection closes unread. A request without a body
  // (no Content-Length, not chunked) has an empty one.
  void Post(httplib::Server& server, const std::string& pattern,
            std::function<void(const httplib::Request&, httplib::Response&)> handler);
  // Ends event streams and blocking calls, so the server's threads can be joined.
  void Stop() { stopping_ = true; }

  Coordinator* core() const { return core_; }
  // Who owns the jobs this API submits and what it may list: the request's token, checked
  // before routing (service/http_access); anonymous without a gatekeeper or tokens.
  void SetGatekeeper(const Gatekeeper* gate) { gate_ = gate; }
  absl::StatusOr<Principal> Caller(const httplib::Request& req) const;
  const HttpApiOptions& options() const { return options_; }
  bool stopping() const { return stopping_; }
  // A slot for an event stream or a blocking call, or RESOURCE_EXHAUSTED when all are taken.
  absl::StatusOr<Slot> TakeStreamSlot() { return Take(streams_, options_.max_event_streams, "event streams"); }
  absl::StatusOr<Slot> TakeSyncSlot() { return Take(sync_calls_, options_.max_sync_calls, "blocking generation calls"); }

 private:
  Coordinator* core_;
  HttpApiOptions options_;
  const Gatekeeper* gate_ = nullptr;
  std::atomic<bool> stopping_{false};
  std::atomic<int> streams_{0};
  std::atomic<int> sync_calls_{0};

  static absl::StatusOr<Slot> Take(std::atomic<int>& used, int limit, const char* what);
};

// Whether a request carries a body: a Content-Length above 0, or a chunked one.
bool RequestHasBody(const httplib::Request& req);

// The route groups, each in its own file.
void RegisterRestRoutes(httplib::Server& server, HttpApi& api);
void RegisterEventRoutes(httplib::Server& server, HttpApi& api);
void RegisterA1111Routes(httplib::Server& server, HttpApi& api);
void RegisterOpenAiRoutes(httplib::Server& server, HttpApi& api);
void RegisterComfyUiRoutes(httplib::Server& server, HttpApi& api);
void RegisterWebRoutes(httplib::Server& server);

}  // namespace spriteforge::coordinator::http
