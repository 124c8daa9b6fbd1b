#include "common/status_macros.h"
#include "coordinator/transport/http/http_access.h"

namespace spriteforge::coordinator {

HttpTarget ClassifyHttpRequest(const std::string& method, const std::string& path) {
  if (path == "/metrics" || path == "/healthz" || path == "/" || path == "/favicon.ico" || path.rfind("/web/", 0) == 0) {
    return {HttpRoute::kOpen, ""};
  }
  if (method == "POST" && (path == "/v1/jobs" || path == "/v1/files" || path == "/sdapi/v1/txt2img" ||
                           path == "/sdapi/v1/img2img" || path == "/v1/images/generations")) {
    return {HttpRoute::kSubmit, ""};
  }
  // ComfyUI's API: /prompt submits; /history/{prompt_id} reads that job; /view, /queue and
  // /interrupt check each job they touch themselves, so submitters may call them.
  if ((method == "POST" && path == "/prompt") || path == "/view" || path == "/queue" || path == "/interrupt" ||
      path == "/history") {
    return {HttpRoute::kSubmit, ""};
  }
  if (path.rfind("/history/", 0) == 0) return {HttpRoute::kReadJob, path.substr(9)};
  // GET /ws falls through to a read (any client role): each prompt it reports is checked
  // against the socket's caller as /history checks it.
  constexpr char kJobs[] = "/v1/jobs/";
  if (path.rfind(kJobs, 0) == 0 && path.size() > sizeof kJobs - 1) {
    const std::string rest = path.substr(sizeof kJobs - 1);
    const size_t slash = rest.find('/');
    const std::string id = rest.substr(0, slash);
    // Deleting a job asks what cancelling it does: its owner or an admin.
    const bool cancel = (method == "POST" && slash != std::string::npos && rest.substr(slash) == "/cancel") ||
                        (method == "DELETE" && slash == std::string::npos);
    return {cancel ? HttpRoute::kCancelJob : HttpRoute::kReadJob, id};
  }
  return {HttpRoute::kReadFleet, ""};
}

absl::Status CheckHttpAccess(Gatekeeper& gate, Coordinator& core, const std::string& method, const std::string& path,
                             const std::string& authorization, const std::string& peer_host) {
  const HttpTarget target = ClassifyHttpRequest(method, path);
  if (target.route == HttpRoute::kOpen) return absl::OkStatus();
  ASSIGN_OR_RETURN(auto who, gate.CallerFor(authorization));
  switch (target.route) {
    case HttpRoute::kSubmit:
      RETURN_IF_ERROR(Authorize(who, Action::kSubmit));
      return gate.AllowSubmitFrom(who, peer_host);
    case HttpRoute::kReadJob:
    case HttpRoute::kCancelJob: {
      if (who.anonymous) return absl::OkStatus();
      ASSIGN_OR_RETURN(auto owner, core.JobOwner(target.job_id));
      return AuthorizeJob(who, target.route == HttpRoute::kCancelJob ? Action::kCancelJob : Action::kReadJob, owner,
                          target.job_id);
    }
    default:
      return Authorize(who, Action::kReadFleet);
  }
}

}  // namespace spriteforge::coordinator
