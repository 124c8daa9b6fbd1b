#include "coordinator/transport/http/http_api.h"

#include <httplib.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "coordinator/transport/http/http_json.h"
#include "coordinator/transport/http/http_connections.h"

namespace spriteforge::coordinator::http {

absl::StatusOr<Slot> HttpApi::Take(std::atomic<int>& used, int limit, const char* what) {
  if (used.fetch_add(1) >= limit) {
    used.fetch_sub(1);
    return absl::ResourceExhaustedError(absl::StrCat("too many open ", what, " (", limit, "); try again later"));
  }
  return Slot(nullptr, [&used](void*) { used.fetch_sub(1); });
}

bool RequestHasBody(const httplib::Request& req) {
  if (absl::StrContains(absl::AsciiStrToLower(req.get_header_value("Transfer-Encoding")), "chunked")) return true;
  uint64_t length = 0;
  return absl::SimpleAtoi(req.get_header_value("Content-Length"), &length) && length > 0;
}

void HttpApi::Post(httplib::Server& server, const std::string& pattern,
                   std::function<void(const httplib::Request&, httplib::Response&)> handler) {
  server.Post(pattern, [this, handler](const httplib::Request& req, httplib::Response& res,
                                       const httplib::ContentReader& read) {
    if (!RequestHasBody(req)) {
      RequestBodyRead();
      return handler(req, res);
    }
    const size_t max = options_.max_body_bytes;
    std::string body;
    bool too_large = false;
    const bool complete = read([&](const char* data, size_t size) {
      too_large = body.size() + size > max;
      if (!too_large) body.append(data, size);
      return !too_large;
    });
    if (!complete) {
      // The rest of the body is never read; the connection ends after this reply.
      CloseAfterResponse();
      res.set_header("Connection", "close");
      if (!too_large) return ReplyError(res, absl::InvalidArgumentError("the request body could not be read"));
      ReplyError(res, absl::ResourceExhaustedError(absl::StrCat("the request body exceeds ", max, " bytes")));
      res.status = 413;
      return;
    }
    RequestBodyRead();
    httplib::Request with_body = req;
    with_body.body = std::move(body);
    handler(with_body, res);
  });
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
  RegisterComfyUiRoutes(server, *this);
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
