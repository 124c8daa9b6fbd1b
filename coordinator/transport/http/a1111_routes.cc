// A1111-compatible routes: POST /sdapi/v1/txt2img (blocks until its job is done),
// GET /sdapi/v1/samplers and /sdapi/v1/sd-models.
#include <httplib.h>

#include <set>

#include "absl/strings/escaping.h"
#include "coordinator/transport/http/a1111.h"
#include "coordinator/transport/http/http_api.h"
#include "coordinator/transport/http/http_json.h"
#include "coordinator/transport/http/sync_jobs.h"

namespace spriteforge::coordinator::http {
namespace {

void Txt2ImgRoute(HttpApi& api, const httplib::Request& req, httplib::Response& res) {
  nlohmann::json body;
  if (auto s = ParseJsonObject(req.body, &body); !s.ok()) return ReplyError(res, s);
  auto request = ParseTxt2Img(body, api.core()->options().limits, api.options().max_sync_images, DrawSeed);
  if (!request.ok()) return ReplyError(res, request.status());
  auto model = ChooseModel(api.core(), request->model);
  if (!model.ok()) return ReplyError(res, model.status());
  // The ControlNet units' images are stored as the caller's uploads, as the client uploads a manifest's.
  auto files = UploadFiles(api, req, Txt2ImgFiles(*request), ManifestFileKind::kImage);
  if (!files.ok()) return ReplyError(res, files.status());
  auto manifest = Txt2ImgManifest(*request, *model, api.core()->options().limits);
  if (!manifest.ok()) return ReplyError(res, manifest.status());
  auto job = SubmitAndWait(api, req, *std::move(manifest), req.get_header_value("Idempotency-Key"));
  if (!job.ok()) return ReplyError(res, job.status());
  nlohmann::json images = nlohmann::json::array();
  for (size_t i = 0; i < job->items.size(); ++i) images.push_back(absl::Base64Escape(job->pngs[i]));
  res.set_header("X-Spriteforge-Job", job->job.id());
  ReplyJson(res, {{"images", std::move(images)},
                  {"parameters", Txt2ImgParameters(*request)},
                  {"info", Txt2ImgInfo(*request, *model, job->items)}});
}

// The models connected workers serve, in A1111's shape (no hashes: workers do not send them).
nlohmann::json SdModels(Coordinator* core) {
  std::set<std::string> names;
  const v1::ListWorkersResponse workers = core->ListWorkers();
  for (const v1::WorkerView& w : workers.workers()) {
    if (w.connected()) names.insert(w.models().begin(), w.models().end());
  }
  nlohmann::json list = nlohmann::json::array();
  for (const std::string& name : names) {
    list.push_back({{"title", name},
                    {"model_name", name},
                    {"hash", nullptr},
                    {"sha256", nullptr},
                    {"filename", name},
                    {"config", nullptr}});
  }
  return list;
}

}  // namespace

void RegisterA1111Routes(httplib::Server& server, HttpApi& api) {
  api.Post(server, "/sdapi/v1/txt2img",
              [&api](const httplib::Request& req, httplib::Response& res) { Txt2ImgRoute(api, req, res); });
  server.Get("/sdapi/v1/samplers", [](const httplib::Request&, httplib::Response& res) { ReplyJson(res, A1111Samplers()); });
  server.Get("/sdapi/v1/sd-models",
             [&api](const httplib::Request&, httplib::Response& res) { ReplyJson(res, SdModels(api.core())); });
}

}  // namespace spriteforge::coordinator::http
