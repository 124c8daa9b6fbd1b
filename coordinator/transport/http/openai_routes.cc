// OpenAI-compatible POST /v1/images/generations: blocks until its job is done and returns
// the images base64-encoded (b64_json) or as URLs of this server (url).
#include <httplib.h>

#include <chrono>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "coordinator/transport/http/http_api.h"
#include "coordinator/transport/http/http_json.h"
#include "coordinator/transport/http/openai.h"
#include "coordinator/transport/http/sync_jobs.h"

namespace spriteforge::coordinator::http {
namespace {

void GenerationsRoute(HttpApi& api, const httplib::Request& req, httplib::Response& res) {
  nlohmann::json body;
  if (auto s = ParseJsonObject(req.body, &body); !s.ok()) return ReplyError(res, s);
  auto request = ParseImageGeneration(body, api.core()->options().limits, api.options().max_sync_images, DrawSeed);
  if (!request.ok()) return ReplyError(res, request.status());
  auto model = ChooseModel(api.core(), request->model);
  if (!model.ok()) return ReplyError(res, model.status());
  auto manifest = ImageGenerationManifest(*request, *model, api.core()->options().limits);
  if (!manifest.ok()) return ReplyError(res, manifest.status());
  auto job = SubmitAndWait(api, req, *std::move(manifest), req.get_header_value("Idempotency-Key"));
  if (!job.ok()) return ReplyError(res, job.status());
  const std::string host = req.get_header_value("Host");
  nlohmann::json data = nlohmann::json::array();
  for (size_t i = 0; i < job->items.size(); ++i) {
    if (request->response_format == "url") {
      data.push_back({{"url", absl::StrCat("http://", host, "/v1/jobs/", job->job.id(), "/results/",
                                           job->items[i].index(), ".png")}});
    } else {
      data.push_back({{"b64_json", absl::Base64Escape(job->pngs[i])}});
    }
  }
  const int64_t created = std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now().time_since_epoch()).count();
  res.set_header("X-Spriteforge-Job", job->job.id());
  ReplyJson(res, {{"created", created}, {"data", std::move(data)}});
}

}  // namespace

void RegisterOpenAiRoutes(httplib::Server& server, HttpApi& api) {
  api.Post(server, "/v1/images/generations",
              [&api](const httplib::Request& req, httplib::Response& res) { GenerationsRoute(api, req, res); });
}

}  // namespace spriteforge::coordinator::http
