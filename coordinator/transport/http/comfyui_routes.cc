// ComfyUI-compatible routes, the part scripts use: POST /prompt (a workflow queued as a job;
// prompt_id = job id), GET /history[/{prompt_id}], GET /view, GET /queue, POST /interrupt,
// GET /object_info[/{class}]. Prompts are remembered while the coordinator runs; their jobs
// are ordinary jobs (listed, watched and fetched like any other).
#include <httplib.h>

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <set>

#include "common/comfyui/workflow.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "coordinator/transport/access/gatekeeper.h"
#include "coordinator/transport/http/comfyui.h"
#include "coordinator/transport/http/http_api.h"
#include "coordinator/transport/http/http_json.h"

namespace spriteforge::coordinator::http {
namespace {

using json = nlohmann::json;

class ComfyPrompts {
 public:
  int64_t Add(ComfyPrompt prompt) {
    std::lock_guard<std::mutex> lock(mu_);
    prompt.number = next_++;
    const int64_t number = prompt.number;
    by_job_[prompt.job_id] = std::move(prompt);
    return number;
  }
  std::vector<ComfyPrompt> All() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<ComfyPrompt> all;
    for (const auto& [id, p] : by_job_) all.push_back(p);
    std::sort(all.begin(), all.end(), [](const ComfyPrompt& a, const ComfyPrompt& b) { return a.number < b.number; });
    return all;
  }
  std::optional<ComfyPrompt> Find(const std::string& job_id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = by_job_.find(job_id);
    if (it == by_job_.end()) return std::nullopt;
    return it->second;
  }

 private:
  std::mutex mu_;
  int64_t next_ = 0;
  std::map<std::string, ComfyPrompt> by_job_;
};

// Whether the caller may read (or cancel) the job, as the native routes decide it.
absl::Status CheckJob(HttpApi& api, const httplib::Request& req, const std::string& job_id, Action action) {
  ASSIGN_OR_RETURN(auto who, api.Caller(req));
  if (who.anonymous) return absl::OkStatus();
  ASSIGN_OR_RETURN(auto owner, api.core()->JobOwner(job_id));
  return AuthorizeJob(who, action, owner, job_id);
}

absl::StatusOr<v1::GetJobResponse> JobWithItems(HttpApi& api, const std::string& job_id) {
  v1::GetJobRequest get;
  get.set_job_id(job_id);
  get.set_include_items(true);
  return api.core()->GetJob(get);
}

std::vector<v1::Item> SortedItems(const v1::GetJobResponse& job) {
  std::vector<v1::Item> items(job.items().begin(), job.items().end());
  std::sort(items.begin(), items.end(), [](const v1::Item& a, const v1::Item& b) { return a.index() < b.index(); });
  return items;
}

std::vector<std::string> ServedModels(Coordinator* core) {
  std::set<std::string> names;
  const v1::ListWorkersResponse workers = core->ListWorkers();
  for (const v1::WorkerView& w : workers.workers()) {
    if (w.connected()) names.insert(w.models().begin(), w.models().end());
  }
  return {names.begin(), names.end()};
}

void PromptRoute(HttpApi& api, ComfyPrompts& prompts, const httplib::Request& req, httplib::Response& res) {
  json body;
  if (auto s = ParseJsonObject(req.body, &body); !s.ok()) return ReplyError(res, s);
  auto workflow = comfyui::ParseWorkflow(req.body);
  if (!workflow.ok()) return ReplyJson(res, PromptError(workflow.status()), 400);
  auto who = api.Caller(req);
  if (!who.ok()) return ReplyError(res, who.status());
  v1::SubmitJobRequest request;
  request.set_manifest(workflow->dump());
  request.set_manifest_name("prompt");
  // Read here too, for node_errors and for each SaveImage's share of the job's images. A
  // prompt carries no files (there is no /upload/image), so LoadImage is refused here.
  auto manifest = comfyui::ImportWorkflow(*workflow, "prompt", api.core()->options().limits);
  if (!manifest.ok()) return ReplyJson(res, PromptError(manifest.status()), 400);
  auto submitted = api.core()->Submit(request, who->name, who->limits);
  if (!submitted.ok()) {
    if (submitted.status().code() == absl::StatusCode::kInvalidArgument) {
      return ReplyJson(res, PromptError(submitted.status()), 400);
    }
    return ReplyError(res, submitted.status());
  }
  ComfyPrompt prompt;
  prompt.job_id = submitted->job().id();
  prompt.client_id = body.value("client_id", "");
  prompt.workflow = *workflow;
  const std::vector<std::string> saves = comfyui::SaveImageNodes(*workflow);
  for (size_t i = 0; i < saves.size() && i < manifest->entries.size(); ++i) {
    prompt.saves.push_back({saves[i], manifest->entries[i].count});
  }
  const int64_t number = prompts.Add(prompt);
  res.set_header("X-Spriteforge-Job", prompt.job_id);
  ReplyJson(res, {{"prompt_id", prompt.job_id}, {"number", number}, {"node_errors", json::object()}});
}

// The caller's finished prompts (or the one asked for), as ComfyUI's history lists them.
void HistoryRoute(HttpApi& api, ComfyPrompts& prompts, const httplib::Request& req, httplib::Response& res,
                  const std::string& only) {
  json history = json::object();
  for (const ComfyPrompt& p : prompts.All()) {
    if (!only.empty() && p.job_id != only) continue;
    if (!CheckJob(api, req, p.job_id, Action::kReadJob).ok()) continue;
    auto job = JobWithItems(api, p.job_id);
    if (!job.ok() || !JobFinished(job->job())) continue;
    history[p.job_id] = HistoryEntry(p, job->job(), SortedItems(*job));
  }
  ReplyJson(res, history);
}

void ViewRoute(HttpApi& api, const httplib::Request& req, httplib::Response& res) {
  std::string job_id;
  int index = 0;
  const std::string type = req.has_param("type") ? req.get_param_value("type") : "output";
  if (type != "output" || !req.get_param_value("subfolder").empty() ||
      !ParseViewFilename(req.get_param_value("filename"), &job_id, &index)) {
    return ReplyError(res, absl::NotFoundError("no such output image (filename as /history lists it, type=output)"));
  }
  if (auto s = CheckJob(api, req, job_id, Action::kReadJob); !s.ok()) return ReplyError(res, s);
  auto job = JobWithItems(api, job_id);
  if (!job.ok()) return ReplyError(res, job.status());
  for (const v1::Item& item : job->items()) {
    if (item.index() != index || item.image_path().empty()) continue;
    auto png = ReadFile(item.image_path());
    if (!png.ok()) return ReplyError(res, absl::NotFoundError("the image's file is gone"));
    return res.set_content(*png, "image/png");
  }
  ReplyError(res, absl::NotFoundError("no such output image yet"));
}

void QueueRoute(HttpApi& api, ComfyPrompts& prompts, const httplib::Request& req, httplib::Response& res) {
  json running = json::array(), pending = json::array();
  for (const ComfyPrompt& p : prompts.All()) {
    if (!CheckJob(api, req, p.job_id, Action::kReadJob).ok()) continue;
    auto job = JobWithItems(api, p.job_id);
    if (!job.ok() || JobFinished(job->job())) continue;
    (job->job().state() == v1::JOB_RUNNING ? running : pending).push_back(QueueEntry(p));
  }
  ReplyJson(res, {{"queue_running", running}, {"queue_pending", pending}});
}

// Cancels the prompt named in the body ({"prompt_id": ...}), else the caller's running ones.
void InterruptRoute(HttpApi& api, ComfyPrompts& prompts, const httplib::Request& req, httplib::Response& res) {
  json body = json::object();
  if (!req.body.empty() && !ParseJsonObject(req.body, &body).ok()) body = json::object();
  const std::string only = body.value("prompt_id", "");
  for (const ComfyPrompt& p : prompts.All()) {
    if (!only.empty() && p.job_id != only) continue;
    if (!CheckJob(api, req, p.job_id, Action::kCancelJob).ok()) continue;
    auto job = JobWithItems(api, p.job_id);
    if (!job.ok() || JobFinished(job->job()) || (only.empty() && job->job().state() != v1::JOB_RUNNING)) continue;
    v1::CancelJobRequest cancel;
    cancel.set_job_id(p.job_id);
    api.core()->Cancel(cancel).IgnoreError();
  }
  ReplyJson(res, json::object());
}

}  // namespace

void RegisterComfyUiRoutes(httplib::Server& server, HttpApi& api) {
  auto prompts = std::make_shared<ComfyPrompts>();
  api.Post(server, "/prompt", [&api, prompts](const httplib::Request& req, httplib::Response& res) {
    PromptRoute(api, *prompts, req, res);
  });
  server.Get("/history", [&api, prompts](const httplib::Request& req, httplib::Response& res) {
    HistoryRoute(api, *prompts, req, res, "");
  });
  server.Get(R"(/history/([^/]+))", [&api, prompts](const httplib::Request& req, httplib::Response& res) {
    HistoryRoute(api, *prompts, req, res, req.matches[1]);
  });
  server.Get("/view", [&api](const httplib::Request& req, httplib::Response& res) { ViewRoute(api, req, res); });
  server.Get("/queue", [&api, prompts](const httplib::Request& req, httplib::Response& res) {
    QueueRoute(api, *prompts, req, res);
  });
  api.Post(server, "/interrupt", [&api, prompts](const httplib::Request& req, httplib::Response& res) {
    InterruptRoute(api, *prompts, req, res);
  });
  server.Get("/object_info", [&api](const httplib::Request&, httplib::Response& res) {
    ReplyJson(res, ObjectInfo(ServedModels(api.core())));
  });
  server.Get(R"(/object_info/([^/]+))", [&api](const httplib::Request& req, httplib::Response& res) {
    json all = ObjectInfo(ServedModels(api.core()));
    const std::string name = req.matches[1];
    if (!all.contains(name)) return ReplyJson(res, json::object());
    ReplyJson(res, {{name, all[name]}});
  });
}

}  // namespace spriteforge::coordinator::http
