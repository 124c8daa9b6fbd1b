// A1111-compatible routes: POST /sdapi/v1/txt2img and /sdapi/v1/img2img (each blocks until
// its job is done), GET /sdapi/v1/progress, GET and POST /sdapi/v1/options, GET
// /sdapi/v1/samplers, /sdapi/v1/sd-models and /sdapi/v1/loras. A request A1111 would find
// invalid is 422 here too, as FastAPI answers A1111's clients.
#include <httplib.h>

#include <memory>
#include <set>

#include "absl/strings/escaping.h"
#include "coordinator/transport/http/a1111.h"
#include "coordinator/transport/http/http_api.h"
#include "coordinator/transport/http/http_json.h"
#include "coordinator/transport/http/sync_jobs.h"

namespace spriteforge::coordinator::http {
namespace {

// A1111 (FastAPI) answers a request whose fields it cannot take with 422; other failures
// keep the API's mapping (404 for an unknown LoRA, 503 without workers, ...).
void ReplyA1111Error(httplib::Response& res, const absl::Status& status) {
  ReplyError(res, status);
  if (status.code() == absl::StatusCode::kInvalidArgument) res.status = 422;
}

std::set<std::string> ServedModels(Coordinator* core) {
  std::set<std::string> names;
  const v1::ListWorkersResponse workers = core->ListWorkers();
  for (const v1::WorkerView& w : workers.workers()) {
    if (w.connected()) names.insert(w.models().begin(), w.models().end());
  }
  return names;
}

// The LoRAs in connected workers' --lora-dir, by the names prompts use.
std::set<std::string> ServedLoras(Coordinator* core) {
  std::set<std::string> names;
  for (const v1::Register& r : core->ConnectedRegistrations()) {
    for (const v1::LoraFile& f : r.lora_files()) names.insert(f.name());
  }
  return names;
}

// txt2img and img2img: the request as a job with the caller's options, its progress kept
// for /sdapi/v1/progress while the call waits.
void GenerateRoute(HttpApi& api, const std::shared_ptr<A1111Sessions>& sessions, bool img2img,
                   const httplib::Request& req, httplib::Response& res) {
  auto who = api.Caller(req);
  if (!who.ok()) return ReplyError(res, who.status());
  nlohmann::json body;
  if (auto s = ParseJsonObject(req.body, &body); !s.ok()) return ReplyA1111Error(res, s);
  const ManifestLimits& limits = api.core()->options().limits;
  auto request = img2img ? ParseImg2Img(body, limits, api.options().max_sync_images, DrawSeed)
                         : ParseTxt2Img(body, limits, api.options().max_sync_images, DrawSeed);
  if (!request.ok()) return ReplyA1111Error(res, request.status());
  if (auto s = CheckPromptLoras(*request, ServedLoras(api.core())); !s.ok()) return ReplyA1111Error(res, s);
  const A1111Sessions::Options options = sessions->OptionsOf(who->name);
  // A request's override_settings win over the caller's POSTed options, as in A1111.
  auto model = ChooseModel(api.core(), request->model.empty() ? options.model : request->model);
  if (!model.ok()) return ReplyA1111Error(res, model.status());
  // The start image and ControlNet units' images are stored as the caller's uploads, as the client uploads a manifest's.
  auto files = UploadFiles(api, req, Txt2ImgFiles(*request), ManifestFileKind::kImage);
  if (!files.ok()) return ReplyA1111Error(res, files.status());
  auto manifest = Txt2ImgManifest(*request, *model, limits, options.preview_every);
  if (!manifest.ok()) return ReplyA1111Error(res, manifest.status());
  const std::string caller = who->name;
  const int64_t call = sessions->Begin(caller, *request, std::chrono::steady_clock::now());
  auto job = SubmitAndWait(api, req, *std::move(manifest), req.get_header_value("Idempotency-Key"),
                           [sessions, caller, call](const v1::JobEvent& event) { sessions->Apply(caller, call, event); });
  sessions->End(caller, call);
  if (!job.ok()) return ReplyA1111Error(res, job.status());
  nlohmann::json images = nlohmann::json::array();
  for (size_t i = 0; i < job->items.size(); ++i) images.push_back(absl::Base64Escape(job->pngs[i]));
  res.set_header("X-Spriteforge-Job", job->job.id());
  ReplyJson(res, {{"images", std::move(images)},
                  {"parameters", Txt2ImgParameters(*request)},
                  {"info", Txt2ImgInfo(*request, *model, job->items)}});
}

void ProgressRoute(HttpApi& api, A1111Sessions& sessions, const httplib::Request& req, httplib::Response& res) {
  auto who = api.Caller(req);
  if (!who.ok()) return ReplyError(res, who.status());
  const std::string skip = req.get_param_value("skip_current_image");
  ReplyJson(res, sessions.Progress(who->name, skip == "true" || skip == "1", std::chrono::steady_clock::now()));
}

void GetOptionsRoute(HttpApi& api, A1111Sessions& sessions, const httplib::Request& req, httplib::Response& res) {
  auto who = api.Caller(req);
  if (!who.ok()) return ReplyError(res, who.status());
  // The model later calls would use: the caller's choice, else the first served one.
  std::string model = sessions.OptionsOf(who->name).model;
  if (model.empty()) model = ChooseModel(api.core(), "").value_or("");
  ReplyJson(res, sessions.OptionsJson(who->name, model));
}

void SetOptionsRoute(HttpApi& api, A1111Sessions& sessions, const httplib::Request& req, httplib::Response& res) {
  auto who = api.Caller(req);
  if (!who.ok()) return ReplyError(res, who.status());
  nlohmann::json body;
  if (auto s = ParseJsonObject(req.body, &body); !s.ok()) return ReplyA1111Error(res, s);
  if (auto s = sessions.SetOptions(who->name, body, ServedModels(api.core())); !s.ok()) return ReplyA1111Error(res, s);
  ReplyJson(res, nullptr);  // A1111 answers null
}

// The models connected workers serve, in A1111's shape (no hashes: workers do not send them).
nlohmann::json SdModels(Coordinator* core) {
  nlohmann::json list = nlohmann::json::array();
  for (const std::string& name : ServedModels(core)) {
    list.push_back({{"title", name},
                    {"model_name", name},
                    {"hash", nullptr},
                    {"sha256", nullptr},
                    {"filename", name},
                    {"config", nullptr}});
  }
  return list;
}

// The LoRAs prompts may name, in A1111's shape; `path` is the name workers load it by.
nlohmann::json Loras(Coordinator* core) {
  nlohmann::json list = nlohmann::json::array();
  for (const std::string& name : ServedLoras(core)) {
    list.push_back({{"name", name}, {"alias", name}, {"path", name + ".safetensors"}, {"metadata", nlohmann::json::object()}});
  }
  return list;
}

}  // namespace

void RegisterA1111Routes(httplib::Server& server, HttpApi& api) {
  using Req = const httplib::Request&;
  using Res = httplib::Response&;
  // Lives as long as the routes that hold it.
  auto sessions = std::make_shared<A1111Sessions>();
  api.Post(server, "/sdapi/v1/txt2img", [&api, sessions](Req req, Res res) { GenerateRoute(api, sessions, false, req, res); });
  api.Post(server, "/sdapi/v1/img2img", [&api, sessions](Req req, Res res) { GenerateRoute(api, sessions, true, req, res); });
  server.Get("/sdapi/v1/progress", [&api, sessions](Req req, Res res) { ProgressRoute(api, *sessions, req, res); });
  server.Get("/sdapi/v1/options", [&api, sessions](Req req, Res res) { GetOptionsRoute(api, *sessions, req, res); });
  api.Post(server, "/sdapi/v1/options", [&api, sessions](Req req, Res res) { SetOptionsRoute(api, *sessions, req, res); });
  server.Get("/sdapi/v1/samplers", [](Req, Res res) { ReplyJson(res, A1111Samplers()); });
  server.Get("/sdapi/v1/sd-models", [&api](Req, Res res) { ReplyJson(res, SdModels(api.core())); });
  server.Get("/sdapi/v1/loras", [&api](Req, Res res) { ReplyJson(res, Loras(api.core())); });
}

}  // namespace spriteforge::coordinator::http
