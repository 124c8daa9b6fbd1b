// Native REST: jobs (submit, list, get, cancel, delete), their results (one by one or as a
// zip), uploaded images, the workers and what they serve, and the caller.
#include <httplib.h>

#include <filesystem>
#include <optional>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/png.h"
#include "common/status_macros.h"
#include "common/zip.h"
#include "common/sprite/control/canny.h"
#include "common/sprite/control/pose_library.h"
#include "common/sprite/control/resize.h"
#include "coordinator/transport/http/http_api.h"
#include "coordinator/transport/http/http_json.h"
#include "coordinator/core/results.h"

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

// An integer query parameter in [min, max]; absent: `*out` unchanged.
absl::Status IntParam(const httplib::Request& req, const char* name, int64_t min, int64_t max, int64_t* out) {
  if (!req.has_param(name)) return absl::OkStatus();
  int64_t v = 0;
  if (!absl::SimpleAtoi(req.get_param_value(name), &v) || v < min || v > max) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": expected an integer in ", min, "..", max));
  }
  *out = v;
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
  // file=PATH=SHA256 (repeated): a path the manifest names, uploaded first to /v1/files.
  for (size_t i = 0; i < req.get_param_value_count("file"); ++i) {
    const std::string file = req.get_param_value("file", i);
    const size_t eq = file.rfind('=');
    if (eq == std::string::npos || eq == 0) {
      return ReplyError(res, absl::InvalidArgumentError("file: expected PATH=SHA256 of an upload"));
    }
    (*request.mutable_files())[file.substr(0, eq)] = file.substr(eq + 1);
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

// GET /v1/jobs?q=&created_from_unix_ms=&created_until_unix_ms=&offset=&limit=: a page of the
// job history, newest first, searched in the store (Store::FindJobs), with the total.
void ListJobs(HttpApi& api, const httplib::Request& req, httplib::Response& res) {
  v1::ListJobsRequest request;
  int64_t limit = 100, offset = 0, from = 0, until = 0;
  constexpr int64_t kMaxMs = int64_t{1} << 53;
  for (absl::Status s : {IntParam(req, "limit", 1, 1000, &limit), IntParam(req, "offset", 0, INT32_MAX, &offset),
                         IntParam(req, "created_from_unix_ms", 0, kMaxMs, &from),
                         IntParam(req, "created_until_unix_ms", 0, kMaxMs, &until)}) {
    if (!s.ok()) return ReplyError(res, s);
  }
  request.set_limit(static_cast<int32_t>(limit));
  request.set_offset(static_cast<int32_t>(offset));
  request.set_created_from_unix_ms(from);
  request.set_created_until_unix_ms(until);
  if (req.has_param("q")) request.set_query(req.get_param_value("q"));
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

// DELETE /v1/jobs/ID: a finished job with its results (owner or admin, as cancelling).
void DeleteJob(HttpApi& api, const httplib::Request& req, httplib::Response& res) {
  if (auto s = api.core()->DeleteJob(req.matches[1]); !s.ok()) return ReplyError(res, s);
  ReplyJson(res, {{"deleted", std::string(req.matches[1])}});
}

// GET /v1/jobs/ID/archive.zip: everything in the job's results folder (images, sprites,
// sidecars, sheets, job.json) under the job's id, stored uncompressed (PNGs do not shrink).
void GetArchive(HttpApi& api, const httplib::Request& req, httplib::Response& res) {
  const std::string job_id = req.matches[1];
  auto files = api.core()->ResultFiles(job_id, /*include_renders=*/true);
  if (!files.ok()) return ReplyError(res, files.status());
  const std::filesystem::path dir = JobDir(api.core()->options().output_dir, job_id);
  std::set<std::string> paths(files->begin(), files->end());
  std::error_code ec;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir, ec)) {
    if (entry.is_regular_file()) paths.insert(entry.path().string());
  }
  ZipWriter zip;
  for (const std::string& path : paths) {
    auto bytes = ReadFile(path);
    if (!bytes.ok()) continue;  // collected while listing
    const std::string name = std::filesystem::path(path).lexically_relative(dir).generic_string();
    const bool inside = !name.empty() && name.rfind("..", 0) != 0;
    auto added = zip.Add(job_id + "/" + (inside ? name : std::filesystem::path(path).filename().string()), *bytes);
    if (!added.ok()) return ReplyError(res, added);
  }
  res.set_header("Content-Disposition", absl::StrCat("attachment; filename=\"", job_id, ".zip\""));
  res.set_content(zip.Finish(), "application/zip");
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

// The item of a job, by index.
absl::StatusOr<v1::Item> JobItem(HttpApi& api, const std::string& job_id, const std::string& index_text) {
  int index = 0;
  if (!absl::SimpleAtoi(index_text, &index)) return absl::InvalidArgumentError("the image index must be an integer");
  ASSIGN_OR_RETURN(auto job, JobWithItems(api, job_id));
  for (const v1::Item& item : job.items()) {
    if (item.index() == index) return item;
  }
  return absl::NotFoundError(absl::StrCat("job ", job.job().id(), " has no image ", index));
}

// GET /v1/jobs/ID/results/N.json: the image's sidecar (its parameters, worker and timings).
void GetSidecar(HttpApi& api, const httplib::Request& req, httplib::Response& res) {
  auto item = JobItem(api, req.matches[1], req.matches[2]);
  if (!item.ok()) return ReplyError(res, item.status());
  if (item->state() != v1::ITEM_DONE) {
    return ReplyError(res, absl::NotFoundError(absl::StrCat("image ", item->index(), " is not done")));
  }
  const std::string& png = item->image_path();
  auto path = ConfinedResultPath(api.core()->options().output_dir, png.substr(0, png.size() - 4) + ".json");
  if (!path.ok()) return ReplyError(res, absl::InternalError("the sidecar lies outside the results folder; not served"));
  auto json = ReadFile(*path);
  if (!json.ok()) return ReplyError(res, absl::NotFoundError(absl::StrCat("image ", item->index(), " has no sidecar")));
  res.set_header("Cache-Control", "max-age=86400, immutable");
  res.set_content(*json, "application/json");
}

// An item's inputs that can be shown: control<k> (one per ControlNet) and reference<k>.
std::vector<std::string> InputNames(const v1::Item& item) {
  std::vector<std::string> names;
  for (int k = 0; k < item.params().controls_size(); ++k) names.push_back(absl::StrCat("control", k));
  for (int k = 0; k < item.params().reference_sha256_size(); ++k) names.push_back(absl::StrCat("reference", k));
  return names;
}

// An uploaded file of the job's owner, as stored (collected once no unfinished job names it).
absl::StatusOr<std::string> UploadedBytes(HttpApi& api, const std::string& job_id, const std::string& sha256) {
  ASSIGN_OR_RETURN(auto owner, api.core()->JobOwner(job_id));
  auto path = api.core()->blobs()->PathFor(sha256, owner);
  if (!path.ok()) return absl::NotFoundError(absl::StrCat("uploaded file ", sha256, " is no longer stored"));
  return ReadFile(*path);
}

absl::StatusOr<RasterImage> UploadedPng(HttpApi& api, const std::string& job_id, const std::string& sha256) {
  ASSIGN_OR_RETURN(auto bytes, UploadedBytes(api, job_id, sha256));
  return DecodePng(bytes);
}

// The control image as the ControlNet sees it, at the item's size: a picture resized, Canny
// edges found, a pose drawn, as the worker makes them.
absl::StatusOr<RasterImage> ControlPicture(HttpApi& api, const std::string& job_id, const v1::Item& item, int k) {
  const v1::ControlImage& c = item.params().controls(k);
  const int width = item.sampling().width(), height = item.sampling().height();
  switch (c.source_case()) {
    case v1::ControlImage::kImageSha256: {
      ASSIGN_OR_RETURN(auto png, UploadedPng(api, job_id, c.image_sha256()));
      return control::ResizeControlImage(png, width, height);
    }
    case v1::ControlImage::kCanny: {
      ASSIGN_OR_RETURN(auto png, UploadedPng(api, job_id, c.canny().image_sha256()));
      ASSIGN_OR_RETURN(auto resized, control::ResizeControlImage(png, width, height));
      return control::CannyEdges(resized, static_cast<int>(c.canny().low()), static_cast<int>(c.canny().high()));
    }
    case v1::ControlImage::kPose: {
      const size_t slash = c.pose().rfind('/');
      ASSIGN_OR_RETURN(auto poses, control::LoadBuiltinPoseSet(c.pose().substr(0, slash)));
      for (const control::NamedPose& pose : poses) {
        if (slash != std::string::npos && pose.name == c.pose().substr(slash + 1)) {
          return control::DrawPose(pose.keypoints, width, height);
        }
      }
      return absl::NotFoundError(absl::StrCat("pose '", c.pose(), "' is not among the built-in poses"));
    }
    case v1::ControlImage::kPoseSha256: {
      ASSIGN_OR_RETURN(auto text, UploadedBytes(api, job_id, c.pose_sha256()));
      const nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
      auto poses = control::ParsePoseSet(doc, "pose");
      if (!poses.ok() || poses->empty()) return absl::InternalError("the uploaded pose file holds no pose");
      return control::DrawPose(poses->front().keypoints, width, height);
    }
    default:
      return absl::NotFoundError("the control image names no source");
  }
}

// GET /v1/jobs/ID/items/N/inputs: the item's control and reference images with their URLs.
void ListInputs(HttpApi& api, const httplib::Request& req, httplib::Response& res) {
  auto item = JobItem(api, req.matches[1], req.matches[2]);
  if (!item.ok()) return ReplyError(res, item.status());
  nlohmann::json inputs = nlohmann::json::array();
  for (const std::string& name : InputNames(*item)) {
    inputs.push_back({{"name", name},
                      {"kind", name.rfind("control", 0) == 0 ? "control" : "reference"},
                      {"url", absl::StrCat("/v1/jobs/", std::string(req.matches[1]), "/items/", item->index(),
                                           "/inputs/", name, ".png")}});
  }
  ReplyJson(res, {{"index", item->index()}, {"inputs", std::move(inputs)}});
}

// GET /v1/jobs/ID/items/N/inputs/(control|reference)K.png.
void GetInputImage(HttpApi& api, const httplib::Request& req, httplib::Response& res) {
  auto item = JobItem(api, req.matches[1], req.matches[2]);
  if (!item.ok()) return ReplyError(res, item.status());
  const std::string kind = req.matches[3];
  int k = 0;
  absl::SimpleAtoi(std::string(req.matches[4]), &k);
  const bool control = kind == "control";
  if (k >= (control ? item->params().controls_size() : item->params().reference_sha256_size())) {
    return ReplyError(res, absl::NotFoundError(absl::StrCat("image ", item->index(), " has no ", kind, " ", k)));
  }
  absl::StatusOr<std::string> png;
  if (control) {
    auto picture = ControlPicture(api, req.matches[1], *item, k);
    png = picture.ok() ? EncodePng(*picture) : absl::StatusOr<std::string>(picture.status());
  } else {
    png = UploadedBytes(api, req.matches[1], item->params().reference_sha256(k));
  }
  if (!png.ok()) return ReplyError(res, png.status());
  res.set_header("Cache-Control", "max-age=86400, immutable");  // an item's inputs never change
  res.set_content(*png, "image/png");
}

// POST /v1/files {"image_base64": "..."}: an image a manifest names by path (init_image, a
// control or reference image), stored for the caller; submit then maps the path to it
// (file=PATH=SHA256). JSON rather than image/png: state-changing calls take only the
// types a cross-site form cannot send (browser_safety).
void UploadFile(HttpApi& api, const httplib::Request& req, httplib::Response& res) {
  const nlohmann::json body = nlohmann::json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  std::string bytes;
  if (!body.is_object() || !body.contains("image_base64") || !body["image_base64"].is_string() ||
      !absl::Base64Unescape(body["image_base64"].get<std::string>(), &bytes) || bytes.empty()) {
    return ReplyError(res, absl::InvalidArgumentError("expected {\"image_base64\": the file in base64}"));
  }
  auto who = api.Caller(req);
  if (!who.ok()) return ReplyError(res, who.status());
  auto upload = api.core()->BeginUpload(ManifestFileKind::kImage, bytes.size(), who->name, who->limits);
  if (!upload.ok()) return ReplyError(res, upload.status());
  if (auto s = (*upload)->Append(bytes); !s.ok()) return ReplyError(res, s);
  auto stored = (*upload)->Finish();
  if (!stored.ok()) return ReplyError(res, stored.status());
  ReplyJson(res, {{"sha256", stored->sha256}, {"size", bytes.size()}}, 201);
}

nlohmann::json NamedFiles(const google::protobuf::RepeatedPtrField<v1::LoraFile>& files) {
  nlohmann::json out = nlohmann::json::array();
  for (const v1::LoraFile& f : files) {
    out.push_back({{"name", f.name()}, {"size_bytes", f.size_bytes()}, {"sha256", f.sha256()}});
  }
  return out;
}

// The worker's models with their weights' size and SHA-256 (Register.model_files); from a
// worker that reports only their names, each name with size 0 and no hash.
nlohmann::json ModelFiles(const v1::Register& r) {
  if (r.model_files_size() > 0) return NamedFiles(r.model_files());
  nlohmann::json out = nlohmann::json::array();
  for (const std::string& name : r.models()) out.push_back({{"name", name}, {"size_bytes", 0}, {"sha256", ""}});
  return out;
}

// GET /v1/workers/files: per connected worker, what manifests may name: its models (names,
// and with the size and SHA-256 of their weights) and the LoRAs, ControlNets, IP-Adapters
// and image encoders in its folders (by name, size and the SHA-256 the worker reports; empty
// from a worker that reports none).
void ListWorkerFiles(HttpApi& api, httplib::Response& res) {
  nlohmann::json workers = nlohmann::json::array();
  for (const v1::Register& r : api.core()->ConnectedRegistrations()) {
    workers.push_back({{"id", r.worker_id()},
                       {"models", r.models()},
                       {"model_files", ModelFiles(r)},
                       {"loras", NamedFiles(r.lora_files())},
                       {"controlnets", NamedFiles(r.controlnet_files())},
                       {"ip_adapters", NamedFiles(r.ip_adapter_files())},
                       {"image_encoders", NamedFiles(r.image_encoder_files())}});
  }
  ReplyJson(res, {{"workers", std::move(workers)}});
}

// GET /v1/me: the caller's name and role, so a page offers only what it may do.
void WhoAmI(HttpApi& api, const httplib::Request& req, httplib::Response& res) {
  auto who = api.Caller(req);
  if (!who.ok()) return ReplyError(res, who.status());
  ReplyJson(res, {{"name", who->name}, {"role", RoleName(who->role)}, {"anonymous", who->anonymous}});
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
  server.Get(absl::StrCat(kJob, R"(/results/(\d{1,9})\.json)"), [&api](Req req, Res res) { GetSidecar(api, req, res); });
  server.Get(absl::StrCat(kJob, R"(/items/(\d{1,9})/inputs)"), [&api](Req req, Res res) { ListInputs(api, req, res); });
  server.Get(absl::StrCat(kJob, R"(/items/(\d{1,9})/inputs/(control|reference)(\d{1,2})\.png)"),
             [&api](Req req, Res res) { GetInputImage(api, req, res); });
  server.Get("/v1/workers", [&api](Req, Res res) { ReplyJsonText(res, ProtoJson(api.core()->ListWorkers())); });
  server.Get("/v1/workers/files", [&api](Req, Res res) { ListWorkerFiles(api, res); });
  server.Get("/v1/me", [&api](Req req, Res res) { WhoAmI(api, req, res); });
  api.Post(server, "/v1/files", [&api](Req req, Res res) { UploadFile(api, req, res); });
  server.Delete(kJob, [&api](Req req, Res res) { DeleteJob(api, req, res); });
  server.Get(absl::StrCat(kJob, "/archive.zip"), [&api](Req req, Res res) { GetArchive(api, req, res); });
}

}  // namespace spriteforge::coordinator::http
