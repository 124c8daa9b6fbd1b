#include "client/progress.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace spriteforge::client {

std::string Bar(double fraction, int width) {
  const int filled = static_cast<int>(std::clamp(fraction, 0.0, 1.0) * width + 0.5);
  return absl::StrCat("[", std::string(filled, '#'), std::string(width - filled, '.'), "]");
}

std::string ProgressView::Update(const v1::JobEvent& event) {
  if (event.has_job()) job_ = event.job();
  std::string log;  // lines that stay (item done/failed) when not on a terminal
  switch (event.event_case()) {
    case v1::JobEvent::kStarted:
      workers_[event.started().worker_id()] = {0, 0, event.started().indices_size()};
      break;
    case v1::JobEvent::kProgress: {
      auto& w = workers_[event.progress().worker_id()];
      w.step = event.progress().step();
      w.total = event.progress().total_steps();
      w.images = event.progress().indices_size();
      break;
    }
    case v1::JobEvent::kItemDone:
      if (!terminal_) {
        log = absl::StrCat("done   #", event.item_done().index(), " seed ", event.item_done().seed(), " by ",
                           event.item_done().worker_id(), " -> ", event.item_done().image_path(), "\n");
      }
      break;
    case v1::JobEvent::kItemFailed:
      log = absl::StrCat("failed #", event.item_failed().index(), ": ", event.item_failed().message(),
                         event.item_failed().will_retry() ? " (will retry)" : "", "\n");
      break;
    default:
      break;
  }
  // Say once why the job waits (a snapshot or a waiting event), and again if it changes.
  if (job_.waiting_reason() != waiting_) {
    waiting_ = job_.waiting_reason();
    if (!waiting_.empty()) absl::StrAppend(&log, "waiting: ", waiting_, "\n");
  }
  const v1::ItemCounts& c = job_.counts();
  const int finished = c.done() + c.failed() + c.cancelled();
  std::string eta = job_.eta_seconds() > 0 ? absl::StrFormat("ETA %.0fs", job_.eta_seconds()) : "ETA -";
  std::vector<std::string> lines;
  lines.push_back(absl::StrFormat("%s %s %d/%d done, %d running, %d failed  %.2f img/s  %s", job_.id(),
                                  Bar(c.total() ? double(finished) / c.total() : 0, 30), c.done(), c.total(),
                                  c.running(), c.failed(), job_.images_per_second(), eta));
  for (const auto& [id, w] : workers_) {
    lines.push_back(absl::StrFormat("  %-24s %s step %d/%d, %d images", id,
                                    Bar(w.total ? double(w.step) / w.total : 0, 20), w.step, w.total, w.images));
  }
  if (!terminal_) {
    // Logs and CI: a plain status line (no bar: nothing redraws it) per item event and at
    // the end, not per step.
    const bool milestone =
        event.event_case() == v1::JobEvent::kItemDone || event.event_case() == v1::JobEvent::kQueued;
    if (!milestone) return log;
    return log + absl::StrFormat("%s: %d/%d done, %d running, %d failed  %.2f img/s  %s\n", job_.id(), c.done(),
                                 c.total(), c.running(), c.failed(), job_.images_per_second(), eta);
  }
  std::string out;
  if (lines_drawn_ > 0) absl::StrAppend(&out, "\x1b[", lines_drawn_, "F");  // back to the first line
  if (!log.empty()) absl::StrAppend(&out, "\x1b[2K", log);
  for (const std::string& line : lines) absl::StrAppend(&out, "\x1b[2K", line, "\n");
  lines_drawn_ = static_cast<int>(lines.size());
  return out;
}

}  // namespace spriteforge::client
