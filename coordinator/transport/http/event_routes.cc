// GET /v1/jobs/{id}/events: a job's events as Server-Sent Events, the same JobEvent
// messages gRPC WatchJob streams (a snapshot first, then each event in order). The event
// name is the kind (queued, started, progress, preview, item_done, item_failed, waiting,
// job_done) and the data its JSON (a preview's PNG in base64); the stream ends after job_done.
#include <httplib.h>

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>

#include "coordinator/transport/http/http_api.h"
#include "coordinator/transport/http/http_json.h"

namespace spriteforge::coordinator::http {
namespace {

// Filled by the core's outbox thread, drained by the HTTP thread that writes the stream.
struct EventQueue {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<v1::JobEvent> events;
};

// Step progress is superseded by the next step; a reader that falls this far behind
// loses progress events, never the others. Previews are larger and go sooner.
constexpr size_t kMaxQueuedProgress = 1024;
constexpr size_t kMaxQueuedForPreview = 64;

const char* KindOf(const v1::JobEvent& event) {
  switch (event.event_case()) {
    case v1::JobEvent::kQueued: return "queued";
    case v1::JobEvent::kStarted: return "started";
    case v1::JobEvent::kProgress: return "progress";
    case v1::JobEvent::kPreview: return "preview";
    case v1::JobEvent::kItemDone: return "item_done";
    case v1::JobEvent::kItemFailed: return "item_failed";
    case v1::JobEvent::kWaiting: return "waiting";
    case v1::JobEvent::kJobDone: return "job_done";
    default: return "message";
  }
}

std::string Frame(const v1::JobEvent& event) {
  return std::string("event: ") + KindOf(event) + "\ndata: " + ProtoJson(event) + "\n\n";
}

void StreamEvents(HttpApi& api, const httplib::Request& req, httplib::Response& res) {
  auto slot = api.TakeStreamSlot();
  if (!slot.ok()) return ReplyError(res, slot.status());
  auto queue = std::make_shared<EventQueue>();
  auto handle = api.core()->Watch(req.matches[1], [queue](const v1::JobEvent& event) {
    {
      std::lock_guard<std::mutex> lock(queue->mu);
      if (event.has_progress() && queue->events.size() >= kMaxQueuedProgress) return;
      if (event.has_preview() && queue->events.size() >= kMaxQueuedForPreview) return;
      queue->events.push_back(event);
    }
    queue->cv.notify_one();
  });
  if (!handle.ok()) return ReplyError(res, handle.status());
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");  // proxies must not hold events back
  Coordinator* core = api.core();
  auto sent_retry = std::make_shared<bool>(false);
  res.set_chunked_content_provider(
      "text/event-stream",
      [&api, queue, sent_retry, slot = *slot](size_t, httplib::DataSink& sink) {
        if (!*sent_retry) {
          *sent_retry = true;
          const std::string retry = "retry: 3000\n\n";
          if (!sink.write(retry.data(), retry.size())) return false;
        }
        std::deque<v1::JobEvent> batch;
        const auto keepalive_at = std::chrono::steady_clock::now() + api.options().sse_keepalive;
        {
          std::unique_lock<std::mutex> lock(queue->mu);
          // Short waits, so a stopping server or a gone client is noticed within a second.
          while (queue->events.empty() && !api.stopping() && std::chrono::steady_clock::now() < keepalive_at) {
            queue->cv.wait_for(lock, std::chrono::milliseconds(500));
            if (!sink.is_writable()) return false;
          }
          batch.swap(queue->events);
        }
        if (api.stopping()) return false;
        if (batch.empty()) {
          const std::string ping = ": keepalive\n\n";
          return sink.write(ping.data(), ping.size());
        }
        for (const v1::JobEvent& event : batch) {
          const std::string frame = Frame(event);
          if (!sink.write(frame.data(), frame.size())) return false;
          if (event.has_job_done()) {
            sink.done();
            return true;
          }
        }
        return true;
      },
      [core, handle = *handle](bool) { core->Unwatch(handle); });
}

}  // namespace

void RegisterEventRoutes(httplib::Server& server, HttpApi& api) {
  server.Get(R"(/v1/jobs/([A-Za-z0-9._-]{1,128})/events)",
             [&api](const httplib::Request& req, httplib::Response& res) { StreamEvents(api, req, res); });
}

}  // namespace spriteforge::coordinator::http
