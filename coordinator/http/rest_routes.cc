// Native REST: jobs (submit, list, get, cancel), their results and the workers.
#include <httplib.h>

#include <filesystem>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "coordinator/http/http_api.h"
#include "coordinator/http/http_json.h"
#include "coordinator/service/results.h"

namespace spriteforge::coordinator::http {
namespace {

constexpr char kJob[] = R"(/v1/jobs/([A-Za-z0-9._-]{1,128}))";

// Query flags read "true"/"1"; anything else is an error rather than a silent false.
absl::Status BoolParam(const httplib::Request& req, const char* name, bool* out) {
  *out = false;
  if (!req.has_param(name)) return absl::OkStatus();
  const std::string v = req.get_param_value(name);
  if (v == "true" || v == "1") *out = true;
  else if (v != "false" && v != "0") return absl::InvalidArgumentError(absl::StrCat(name, ": expected true or false, got '", v, "'"));
  return absl::OkStatus();
}

std::string ResultUrl(const std::string& job_id, int index) {
  return absl::StrCat("/v1/jobs/", job_id, "/results/", index, ".png");
}

void Submit(HttpApi& api, const httplib::Request& req, httplib::Response& res) {
  v1::SubmitJobRequest request;
  request.set_manifest(req.body);
  request.set_manifest_name(req.has_param("filename") ? req.get_param_value("filename") : "manifest");
  request.set_idempotency_key(req.get_header_value("Idempotency-Key"));
  if (req.has_param("model")) request.set_model_override(req.get_param_value("model"));
  if (req.has_param("preview_every")) {
    int every = 0;
    if (!absl::SimpleAtoi(req.get_param_value("preview_every"), &every) || every < 0) {
      return ReplyError(res, absl::InvalidArgumentError("preview_every: expected a whole number of steps, 0 or more"));
    }
    request.set_preview_every(every);
  }
  if (request.manifest().empty()) return ReplyError(res, absl::InvalidArgumentError("the request body (the manifest) is empty"));
  if (request.idempotency_key().size() > 256) {
    return ReplyError(res, absl::InvalidArgumentError("Idempotency-Key: at most 256 characters"));
  }
  auto who = api.Caller(req);
  if (!who.ok()) return ReplyError(res, who.status());
  auto submitted = api.core()->Submit(request, who->name, who->limits);
  if (!submitted.ok()) return ReplyError(res, submitted.status());
  res.set_header("Location", absl::StrCat("/v1/jobs/", submitted->job().id()));
  ReplyJsonText(res, ProtoJson(*submitted), submitted->deduplicated() ? 200 : 201);
}

void ListJobs(HttpApi& api, const httplib::Request& req, httplib::Response& res) {
  v1::ListJobsRequest request;
  if (req.has_param("limit")) {
    int limit = 0;
    if (!absl::SimpleAtoi(req.get_param_value("limit"), &limit) || limit < 1 || limit > 1000) {
      return ReplyError(res, absl::InvalidArgumentError("limit: expected an integer in 1..1000"));
    }
    request.set_limit(limit);
  }
  auto who = api.Caller(req);
  if (!who.ok()) return ReplyError(res, who.status());
  auto jobs = api.core()->ListJobs(request, SeesAllJobs(*who) ? std::nullopt : std::optional(who->name));
  if (!jobs.ok()) return ReplyError(res, jobs.status());
  ReplyJsonText(res, ProtoJson(*jobs));
}

void GetJob(HttpApi& api, const httplib::Request& req, httplib::Response& res) {
  v1::GetJobRequest request;
  request.set_job_id(req.matches[1]);
  bool items = false;
  if (auto s = BoolParam(req, "items", &items); !s.ok()) return ReplyError(res, s);
  request.set_include_items(items);
  auto job = api.core()->GetJob(request);
  if (!job.ok()) return ReplyError(res, job.status());
  ReplyJsonText(res, ProtoJson(*job));
}

void CancelJob(HttpApi& api, const httplib::Request& req, httplib::Response& res) {
  v1::CancelJobRequest request;
  request.set_job_id(req.matches[1]);
  auto job = api.core()->Cancel(request);
  if (!job.ok()) return ReplyError(res, job.status());
  ReplyJsonText(res, ProtoJson(*job));
}

absl::StatusOr<v1::GetJobResponse> JobWithItems(HttpApi& api, const std::string& job_id) {
  v1::GetJobRequest request;
  request.set_job_id(job_id);
  request.set_include_items(true);
  return api.core()->GetJob(request);
}

// The finished images of a job, with the URLs that serve them.
void ListResults(HttpApi& api, const httplib::Request& req, httplib::Response& res) {
  auto job = JobWithItems(api, req.matches[1]);
  if (!job.ok()) return ReplyError(res, job.status());
  nlohmann::json results = nlohmann::json::array();
  for (const v1::Item& item : job->items()) {
    if (item.state() != v1::ITEM_DONE) continue;
    nlohmann::json r = {{"index", item.index()},
                        {"seed", std::to_string(item.params().seed())},
                        {"prompt", item.params().prompt()},
                        {"width", item.sampling().width()},
                        {"height", item.sampling().height()},
                        {"worker_id", item.worker_id()},
                        {"url", ResultUrl(job->job().id(), item.index())}};
    if (!item.sprite_path().empty()) r["render_url"] = ResultUrl(job->job().id(), item.index()) + "?render=true";
    results.push_back(std::move(r));
  }
  ReplyJson(res, {{"job_id", job->job().id()},
                  {"state", v1::JobState_Name(job->job().state())},
                  {"total", job->job().counts().total()},
                  {"results", std::move(results)}});
}

// One image: the sprite when the job made one (the raw render with ?render=true).
void GetResultImage(HttpApi& api, const httplib::Request& req, httplib::Response& res) {
  int index = 0;
  if (!absl::SimpleAtoi(std::string(req.matches[2]), &index)) {
    return ReplyError(res, absl::InvalidArgumentError("the image index must be an integer"));
  }
  bool render = false;
  if (auto s = BoolParam(req, "render", &render); !s.ok()) return ReplyError(res, s);
  auto job = JobWithItems(api, req.matches[1]);
  if (!job.ok()) return ReplyError(res, job.status());
  const v1::Item* item = nullptr;
  for (const v1::Item& it : job->items()) {
    if (it.index() == index) item = &it;
  }
  if (!item) return ReplyError(res, absl::NotFoundError(absl::StrCat("job ", job->job().id(), " has no image ", index)));
  if (item->state() != v1::ITEM_DONE) {
    return ReplyError(res, absl::NotFoundError(absl::StrCat("image ", index, " of job ", job->job().id(), " is ",
                                                            v1::ItemState_Name(item->state()), ", not done")));
  }
  // Rows name the files; only those inside the results folder are served.
  auto path = ConfinedResultPath(api.core()->options().output_dir,
                                 item->sprite_path().empty() || render ? item->image_path() : item->sprite_path());
  if (!path.ok()) {
    return ReplyError(res, absl::InternalError(absl::StrCat("image ", index, " of job ", job->job().id(),
                                                            " lies outside the results folder; not served")));
  }
  auto png = ReadFile(*path);
  if (!png.ok()) return ReplyError(res, absl::InternalError(absl::StrCat("cannot read the image of item ", index)));
  // A committed result never changes, so browsers may keep it.
  res.set_header("Cache-Control", "max-age=86400, immutable");
  res.set_content(*png, "image/png");
}

}  // namespace

void RegisterRestRoutes(httplib::Server& server, HttpApi& api) {
  using Req = const httplib::Request&;
  using Res = httplib::Response&;
  api.Post(server, "/v1/jobs", [&api](Req req, Res res) { Submit(api, req, res); });
  server.Get("/v1/jobs", [&api](Req req, Res res) { ListJobs(api, req, res); });
  server.Get(kJob, [&api](Req req, Res res) { GetJob(api, req, res); });
  api.Post(server, absl::StrCat(kJob, "/cancel"), [&api](Req req, Res res) { CancelJob(api, req, res); });
  server.Get(absl::StrCat(kJob, "/results"), [&api](Req req, Res res) { ListResults(api, req, res); });
  server.Get(absl::StrCat(kJob, R"(/results/(\d{1,9})\.png)"),
             [&api](Req req, Res res) { GetResultImage(api, req, res); });
  server.Get("/v1/workers", [&api](Req, Res res) { ReplyJsonText(res, ProtoJson(api.core()->ListWorkers())); });
}

}  // namespace spriteforge::coordinator::http
