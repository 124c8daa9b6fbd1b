#include "coordinator/http/http_api.h"

#include <httplib.h>

#include "absl/strings/str_cat.h"
#include "coordinator/http/http_json.h"

namespace spriteforge::coordinator::http {

absl::StatusOr<Slot> HttpApi::Take(std::atomic<int>& used, int limit, const char* what) {
  if (used.fetch_add(1) >= limit) {
    used.fetch_sub(1);
    return absl::ResourceExhaustedError(absl::StrCat("too many open ", what, " (", limit, "); try again later"));
  }
  return Slot(nullptr, [&used](void*) { used.fetch_sub(1); });
}

absl::StatusOr<Principal> HttpApi::Caller(const httplib::Request& req) const {
  if (!gate_) return Principal{};
  return gate_->CallerFor(req.get_header_value("Authorization"));
}

void HttpApi::Register(httplib::Server& server) {
  server.set_payload_max_length(options_.max_body_bytes);
  // Event streams and blocking generation calls each hold a thread; the default pool
  // (cores - 1, at least 8) would let a few open browser tabs starve /metrics.
  server.new_task_queue = [] { return new httplib::ThreadPool(64); };
  RegisterRestRoutes(server, *this);
  RegisterEventRoutes(server, *this);
  RegisterA1111Routes(server, *this);
  RegisterOpenAiRoutes(server, *this);
  RegisterWebRoutes(server);
  // Failures the routes did not describe themselves (unknown path, body too large) get
  // the same JSON shape.
  const size_t max = options_.max_body_bytes;
  server.set_error_handler(httplib::Server::HandlerWithResponse([max](const httplib::Request& req,
                                                                     httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    absl::Status status;
    if (res.status == 404) {
      status = absl::NotFoundError(absl::StrCat("no route for ", req.method, " ", req.path));
    } else if (res.status == 413) {
      status = absl::ResourceExhaustedError(absl::StrCat("the request body exceeds ", max, " bytes"));
    } else if (res.status == 405) {
      status = absl::UnimplementedError(absl::StrCat(req.method, " is not supported on ", req.path));
    } else {
      status = absl::InvalidArgumentError(absl::StrCat("HTTP ", res.status, " for ", req.method, " ", req.path));
    }
    const int code = res.status;
    ReplyError(res, status);
    res.status = code;
    return httplib::Server::HandlerResponse::Handled;
  }));
}

}  // namespace spriteforge::coordinator::http
