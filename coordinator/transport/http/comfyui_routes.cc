// ComfyUI-compatible routes, the part scripts use: POST /prompt (a workflow queued as a job;
// prompt_id = job id), GET /history[/{prompt_id}], GET /view, GET /queue, POST /interrupt,
// GET /object_info[/{class}], and the /ws websocket that reports the prompts queued with its
// clientId. Prompts are remembered while the coordinator runs; their jobs are ordinary jobs
// (listed, watched and fetched like any other).
#include <httplib.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

#include "common/comfyui/workflow.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "coordinator/transport/access/gatekeeper.h"
#include "coordinator/transport/http/comfyui.h"
#include "coordinator/transport/http/http_api.h"
#include "coordinator/transport/http/http_connections.h"
#include "coordinator/transport/http/http_json.h"

namespace spriteforge::coordinator::http {
namespace {

using json = nlohmann::json;

// An open /ws connection: the prompts queued with its client id since it opened, and the
// events of their jobs (filled by the core's outbox thread), until its thread writes them.
struct ComfySocket {
  std::string client_id;
  Principal who;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<ComfyPrompt> announced;
  std::deque<v1::JobEvent> events;
};

class ComfyPrompts {
 public:
  int64_t Add(ComfyPrompt prompt) {
    std::lock_guard<std::mutex> lock(mu_);
    prompt.number = next_++;
    const int64_t number = prompt.number;
    for (const std::shared_ptr<ComfySocket>& socket : sockets_) {
      if (prompt.client_id.empty() || socket->client_id != prompt.client_id) continue;
      std::lock_guard<std::mutex> socket_lock(socket->mu);
      socket->announced.push_back(prompt);
      socket->cv.notify_one();
    }
    by_job_[prompt.job_id] = std::move(prompt);
    return number;
  }
  void Listen(std::shared_ptr<ComfySocket> socket) {
    std::lock_guard<std::mutex> lock(mu_);
    sockets_.insert(std::move(socket));
  }
  void Forget(const std::shared_ptr<ComfySocket>& socket) {
    std::lock_guard<std::mutex> lock(mu_);
    sockets_.erase(socket);
  }
  std::string NewClientId() {
    std::lock_guard<std::mutex> lock(mu_);
    return absl::StrCat("spriteforge-", next_socket_++);
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
  int64_t next_socket_ = 0;
  std::map<std::string, ComfyPrompt> by_job_;
  std::set<std::shared_ptr<ComfySocket>> sockets_;
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

// One /ws connection's writing side, run by its content provider on the connection's thread:
// the prompts it follows and what the client sent that is not a whole frame yet.
class SocketWriter {
 public:
  SocketWriter(HttpApi& api, std::shared_ptr<ComfyPrompts> prompts, std::shared_ptr<ComfySocket> socket, Slot slot)
      : api_(api), prompts_(std::move(prompts)), socket_(std::move(socket)), slot_(std::move(slot)),
        fd_(PlainSocket()) {}
  ~SocketWriter() {
    for (const auto& [job_id, handle] : watches_) api_.core()->Unwatch(handle);
    prompts_->Forget(socket_);
  }

  // One turn of the provider: false ends the connection.
  bool Turn(httplib::DataSink& sink) {
    if (!greeted_) {
      greeted_ = true;
      if (!Send(sink, kWsText, StatusMessage(QueueRemaining(), socket_->client_id).dump())) return false;
    }
    std::vector<ComfyPrompt> announced;
    std::deque<v1::JobEvent> events;
    const auto keepalive_at = std::chrono::steady_clock::now() + api_.options().sse_keepalive;
    {
      std::unique_lock<std::mutex> lock(socket_->mu);
      // Short waits, so a closing client, a stopping server or a gone client is noticed soon.
      while (socket_->announced.empty() && socket_->events.empty() && !api_.stopping() &&
             std::chrono::steady_clock::now() < keepalive_at && !ClientWrote()) {
        socket_->cv.wait_for(lock, std::chrono::milliseconds(100));
        if (!sink.is_writable()) return false;
      }
      announced.swap(socket_->announced);
      events.swap(socket_->events);
    }
    if (api_.stopping()) return false;
    if (!ReadClient(sink)) return false;
    for (ComfyPrompt& prompt : announced) Follow(std::move(prompt));
    for (const v1::JobEvent& event : events) {
      if (!Forward(sink, event)) return false;
    }
    if (std::chrono::steady_clock::now() >= keepalive_at) return Send(sink, kWsPing, "");
    return true;
  }

 private:
  static bool Send(httplib::DataSink& sink, int opcode, const std::string& payload) {
    const std::string frame = WebSocketFrame(opcode, payload);
    return sink.write(frame.data(), frame.size());
  }

  bool ClientWrote() const {
    pollfd ready{fd_, POLLIN, 0};
    return fd_ >= 0 && poll(&ready, 1, 0) > 0;
  }

  // Answers the client's pings and its close; false once it closed or went away.
  bool ReadClient(httplib::DataSink& sink) {
    if (!ClientWrote()) return true;
    char buffer[4096];
    const ssize_t n = recv(fd_, buffer, sizeof buffer, MSG_DONTWAIT);
    if (n == 0) return false;
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    inbox_.append(buffer, static_cast<size_t>(n));
    for (const WebSocketMessage& message : TakeClientFrames(&inbox_)) {
      if (message.opcode == kWsClose) {
        Send(sink, kWsClose, message.payload.substr(0, 2));
        return false;
      }
      if (message.opcode == kWsPing && !Send(sink, kWsPong, message.payload)) return false;
    }
    return inbox_.size() < (1 << 20);  // this socket takes no messages: a flood ends it
  }

  // Watches a prompt's job when the socket's caller may read it (the same client id may be
  // another caller's).
  void Follow(ComfyPrompt prompt) {
    if (!socket_->who.anonymous) {
      auto owner = api_.core()->JobOwner(prompt.job_id);
      if (!owner.ok() || !AuthorizeJob(socket_->who, Action::kReadJob, *owner, prompt.job_id).ok()) return;
    }
    const std::string job_id = prompt.job_id;
    auto handle = api_.core()->Watch(job_id, [socket = socket_](const v1::JobEvent& event) {
      if (event.has_preview()) return;
      {
        std::lock_guard<std::mutex> lock(socket->mu);
        socket->events.push_back(event);
      }
      socket->cv.notify_one();
    });
    if (!handle.ok()) return;
    watches_[job_id] = *handle;
    progress_.emplace(job_id, ComfyProgress(std::move(prompt)));
  }

  bool Forward(httplib::DataSink& sink, const v1::JobEvent& event) {
    auto it = progress_.find(event.job_id());
    if (it == progress_.end() || it->second.finished()) return true;
    std::vector<v1::Item> items;
    if (event.has_job_done()) {
      if (auto job = JobWithItems(api_, event.job_id()); job.ok()) items = SortedItems(*job);
    }
    for (const json& message : it->second.On(event, items)) {
      if (!Send(sink, kWsText, message.dump())) return false;
    }
    if (it->second.finished()) {
      api_.core()->Unwatch(watches_[event.job_id()]);
      watches_.erase(event.job_id());
      progress_.erase(it);
      return Send(sink, kWsText, StatusMessage(QueueRemaining(), socket_->client_id).dump());
    }
    return true;
  }

  // The caller's unfinished prompts, as /queue lists them.
  int QueueRemaining() {
    int remaining = 0;
    for (const ComfyPrompt& p : prompts_->All()) {
      if (!socket_->who.anonymous) {
        auto owner = api_.core()->JobOwner(p.job_id);
        if (!owner.ok() || !AuthorizeJob(socket_->who, Action::kReadJob, *owner, p.job_id).ok()) continue;
      }
      v1::GetJobRequest get;
      get.set_job_id(p.job_id);
      auto job = api_.core()->GetJob(get);
      if (job.ok() && !JobFinished(job->job())) ++remaining;
    }
    return remaining;
  }

  HttpApi& api_;
  std::shared_ptr<ComfyPrompts> prompts_;
  std::shared_ptr<ComfySocket> socket_;
  Slot slot_;
  int fd_;
  bool greeted_ = false;
  std::string inbox_;
  std::map<std::string, int64_t> watches_;
  std::map<std::string, ComfyProgress> progress_;
};

// GET /ws?clientId=ID: answers the websocket handshake (101), then writes ComfyUI's messages
// for the prompts queued with that client_id until the client closes. httplib 0.11 cannot
// hand the connection over, so the reply's body is the frames: a content provider without a
// length writes them as they are.
void WebSocketRoute(HttpApi& api, const std::shared_ptr<ComfyPrompts>& prompts, const httplib::Request& req,
                    httplib::Response& res) {
  const std::string key = req.get_header_value("Sec-WebSocket-Key");
  if (!absl::EqualsIgnoreCase(req.get_header_value("Upgrade"), "websocket") || key.empty()) {
    return ReplyError(res, absl::InvalidArgumentError("/ws is a websocket: Upgrade: websocket and Sec-WebSocket-Key"));
  }
  auto who = api.Caller(req);
  if (!who.ok()) return ReplyError(res, who.status());
  auto slot = api.TakeStreamSlot();
  if (!slot.ok()) return ReplyError(res, slot.status());
  auto socket = std::make_shared<ComfySocket>();
  socket->client_id = req.has_param("clientId") ? req.get_param_value("clientId") : prompts->NewClientId();
  socket->who = *who;
  prompts->Listen(socket);
  auto writer = std::make_shared<SocketWriter>(api, prompts, socket, *slot);
  res.status = 101;
  res.set_header("Upgrade", "websocket");
  res.set_header("Connection", "Upgrade");
  res.set_header("Sec-WebSocket-Accept", WebSocketAccept(key));
  CloseAfterResponse();  // what follows the frames is no HTTP request
  res.set_content_provider(
      "application/octet-stream", [writer](size_t, httplib::DataSink& sink) { return writer->Turn(sink); });
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
  server.Get("/ws", [&api, prompts](const httplib::Request& req, httplib::Response& res) {
    WebSocketRoute(api, prompts, req, res);
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
