#include "coordinator/tools/fleet_sim/fleet_stats.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace spriteforge::fleet {
namespace {

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t at = std::min(v.size() - 1, static_cast<size_t>(std::ceil(p * v.size())) - (p > 0 ? 1 : 0));
  return v[at];
}

// Assignments of a lower priority this close to a higher job's first or last one are not
// counted as out of order: messages to different workers arrive in no fixed order.
constexpr double kOrderSlackSeconds = 0.25;

}  // namespace

void FleetStats::AddJob(const std::string& job_id, int priority, int64_t images) {
  std::lock_guard<std::mutex> lock(mu_);
  jobs_[job_id] = Job{priority, images};
}

void FleetStats::OpenWindow(Clock::time_point at, int64_t tail_from) {
  std::lock_guard<std::mutex> lock(mu_);
  window_start_ = at;
  tail_from_ = tail_from;
  if (items_assigned_ >= tail_from_) window_end_ = at;
}

void FleetStats::CloseWindow(Clock::time_point at) {
  std::lock_guard<std::mutex> lock(mu_);
  if (window_start_ && !window_end_) window_end_ = at;
}

std::pair<double, double> FleetStats::Window() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {window_start_ ? Seconds(*window_start_) : -1, window_end_ ? Seconds(*window_end_) : -1};
}

double FleetStats::InWindowLocked(Clock::time_point from, Clock::time_point to) const {
  if (!window_start_) return 0;
  const Clock::time_point a = std::max(from, *window_start_);
  const Clock::time_point b = window_end_ ? std::min(to, *window_end_) : to;
  return b > a ? std::chrono::duration<double>(b - a).count() : 0;
}

void FleetStats::OnRegistered() {
  std::lock_guard<std::mutex> lock(mu_);
  ++registered_;
}

void FleetStats::OnAssignment(const v1::Assignment& a, Clock::time_point at,
                              std::optional<Clock::time_point> ready_since) {
  std::map<std::string, int> by_job;
  for (const v1::AssignedItem& item : a.items()) ++by_job[item.job_id()];
  std::lock_guard<std::mutex> lock(mu_);
  const bool in_window = window_start_ && at >= *window_start_ && !window_end_;
  ++assignments_;
  if (in_window) ++window_assignments_;
  items_assigned_ += a.items_size();
  const double t = Seconds(at);
  for (const auto& [job, n] : by_job) log_.push_back({t, job, n});
  // A worker ready before the window (before there was work) waits from its start.
  if (ready_since && in_window) {
    wait_ms_.push_back(std::chrono::duration<double, std::milli>(at - std::max(*ready_since, *window_start_)).count());
  }
  if (window_start_ && !window_end_ && items_assigned_ >= tail_from_) window_end_ = at;
}

void FleetStats::OnGpuBusy(Clock::time_point from, Clock::time_point to) {
  std::lock_guard<std::mutex> lock(mu_);
  busy_s_ += InWindowLocked(from, to);
}

void FleetStats::OnGpuIdle(Clock::time_point from, Clock::time_point to) {
  std::lock_guard<std::mutex> lock(mu_);
  idle_s_ += InWindowLocked(from, to);
}

void FleetStats::OnResultSent(int images) {
  std::lock_guard<std::mutex> lock(mu_);
  images_sent_ += images;
}
void FleetStats::OnOutOfMemory() {
  std::lock_guard<std::mutex> lock(mu_);
  ++ooms_;
}
void FleetStats::OnCrash() {
  std::lock_guard<std::mutex> lock(mu_);
  ++crashes_;
}
void FleetStats::OnCancel() {
  std::lock_guard<std::mutex> lock(mu_);
  ++cancels_;
}

int FleetStats::registered() const {
  std::lock_guard<std::mutex> lock(mu_);
  return registered_;
}
int64_t FleetStats::images_sent() const {
  std::lock_guard<std::mutex> lock(mu_);
  return images_sent_;
}
int64_t FleetStats::items_assigned() const {
  std::lock_guard<std::mutex> lock(mu_);
  return items_assigned_;
}

// Two definitions from the planner: a lower priority gets nothing while a higher job still
// has items to hand out, and jobs of one priority take turns, so while all of them have
// items left each gets the same share of images.
nlohmann::json FleetStats::FairnessLocked() const {
  struct Seen {
    double first = -1, last = -1, exhausted = -1;
    int64_t assigned = 0;
  };
  std::map<std::string, Seen> seen;
  for (const AssignmentLog& e : log_) {
    auto job = jobs_.find(e.job_id);
    if (job == jobs_.end()) continue;
    Seen& s = seen[e.job_id];
    if (s.first < 0) s.first = e.t;
    s.last = e.t;
    s.assigned += e.items;
    if (s.exhausted < 0 && s.assigned >= job->second.images) s.exhausted = e.t;
  }
  std::map<int, std::vector<std::string>, std::greater<int>> levels;
  for (const auto& [id, job] : jobs_) levels[job.priority].push_back(id);

  nlohmann::json out_levels = nlohmann::json::array();
  double worst_share_error = 0;
  for (const auto& [priority, ids] : levels) {
    nlohmann::json level = {{"priority", priority}, {"jobs", ids.size()}};
    int64_t images = 0;
    double from = -1, to = 1e300;
    bool all_seen = true;
    for (const std::string& id : ids) {
      images += jobs_.at(id).images;
      auto s = seen.find(id);
      if (s == seen.end()) {
        all_seen = false;
        continue;
      }
      from = std::max(from, s->second.first);
      if (s->second.exhausted >= 0) to = std::min(to, s->second.exhausted);
    }
    level["images"] = images;
    if (to == 1e300) to = log_.empty() ? from : log_.back().t;
    // Round-robin: between the moment every job of the level was served once and the first
    // moment one of them ran out of items.
    if (ids.size() > 1 && all_seen && to > from) {
      std::map<std::string, int64_t> got;
      int64_t total = 0;
      for (const AssignmentLog& e : log_) {
        if (e.t < from || e.t >= to) continue;
        auto job = jobs_.find(e.job_id);
        if (job == jobs_.end() || job->second.priority != priority) continue;
        got[e.job_id] += e.items;
        total += e.items;
      }
      double max_error = 0;
      const double fair = static_cast<double>(total) / ids.size();
      for (const std::string& id : ids) max_error = std::max(max_error, std::abs(got[id] - fair) / fair);
      level["round_robin"] = {{"window_s", {from, to}}, {"images", total}, {"max_share_error", max_error}};
      if (total >= static_cast<int64_t>(ids.size()) * 8) worst_share_error = std::max(worst_share_error, max_error);
    }
    out_levels.push_back(std::move(level));
  }

  // Priority order: lower-priority images handed out while a higher job, already being
  // served, still had items to come.
  int64_t inverted = 0, lower_total = 0;
  for (const AssignmentLog& e : log_) {
    auto job = jobs_.find(e.job_id);
    if (job == jobs_.end()) continue;
    bool lower = false, inversion = false;
    for (const auto& [id, s] : seen) {
      if (jobs_.at(id).priority <= job->second.priority) continue;
      lower = true;
      if (e.t > s.first + kOrderSlackSeconds && e.t < s.last - kOrderSlackSeconds) inversion = true;
    }
    if (lower) lower_total += e.items;
    if (inversion) inverted += e.items;
  }
  return {{"levels", out_levels},
          {"round_robin_max_share_error", worst_share_error},
          {"priority_inversions", {{"images", inverted}, {"of_lower_priority_images", lower_total}}}};
}

nlohmann::json FleetStats::Report() const {
  std::lock_guard<std::mutex> lock(mu_);
  const double from = window_start_ ? Seconds(*window_start_) : 0;
  const double to = window_end_ ? Seconds(*window_end_) : (log_.empty() ? from : log_.back().t);
  const double window = std::max(1e-9, to - from);
  return {{"window_s", {from, to}},
          {"assignments", assignments_},
          {"assignments_per_second", window_assignments_ / window},
          {"items_assigned", items_assigned_},
          {"images_sent", images_sent_},
          {"ready_to_assignment_ms",
           {{"p50", Percentile(wait_ms_, 0.5)},
            {"p99", Percentile(wait_ms_, 0.99)},
            {"max", Percentile(wait_ms_, 1.0)},
            {"count", wait_ms_.size()}}},
          {"gpu_busy_s", busy_s_},
          {"gpu_idle_s", idle_s_},
          {"gpu_idle_fraction", busy_s_ + idle_s_ > 0 ? idle_s_ / (busy_s_ + idle_s_) : 0},
          {"failures_injected", {{"out_of_memory", ooms_}, {"crashes", crashes_}}},
          {"cancels_received", cancels_},
          {"fairness", FairnessLocked()}};
}

}  // namespace spriteforge::fleet
