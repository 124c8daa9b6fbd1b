#include "worker/session/batch_stages.h"

#include <utility>

namespace spriteforge::worker {

void BatchStages::Queue(v1::Assignment assignment) {
  std::lock_guard<std::mutex> lock(mu_);
  queued_.push_back(std::move(assignment));
  changed_.notify_all();
}

CancelOutcome BatchStages::Cancel(const std::string& batch_id) {
  std::lock_guard<std::mutex> lock(mu_);
  CancelOutcome out;
  if (rendering_ == batch_id) {
    cancel_rendering_ = true;
    out.was_rendering = true;
  }
  for (auto it = queued_.begin(); it != queued_.end();) {
    if (it->batch_id() != batch_id) {
      ++it;
      continue;
    }
    ++out.dropped_queued;
    it = queued_.erase(it);
  }
  return out;
}

std::optional<v1::Assignment> BatchStages::StartRendering() {
  std::unique_lock<std::mutex> lock(mu_);
  changed_.wait(lock, [&] { return ended_ || (!queued_.empty() && to_package_.size() < max_waiting_to_package_); });
  if (ended_) return std::nullopt;
  v1::Assignment assignment = std::move(queued_.front());
  queued_.pop_front();
  rendering_ = assignment.batch_id();
  cancel_rendering_ = false;
  return assignment;
}

void BatchStages::FinishRendering(std::optional<RenderedBatch> rendered) {
  std::lock_guard<std::mutex> lock(mu_);
  rendering_.clear();
  if (rendered) to_package_.push_back(std::move(*rendered));
  changed_.notify_all();
}

std::optional<RenderedBatch> BatchStages::StartPackaging() {
  std::optional<RenderedBatch> next;
  {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait(lock, [&] { return ended_ || !to_package_.empty(); });
    if (ended_) return std::nullopt;
    next = std::move(to_package_.front());
    to_package_.pop_front();
    packaging_ = next->assignment.batch_id();
  }
  changed_.notify_all();  // the renderer may wait for room
  return next;
}

void BatchStages::FinishPackaging() {
  std::lock_guard<std::mutex> lock(mu_);
  packaging_.clear();
}

std::optional<std::vector<std::string>> BatchStages::AwaitBeat(std::chrono::milliseconds interval) {
  std::unique_lock<std::mutex> lock(mu_);
  if (ended_) return std::nullopt;
  changed_.wait_for(lock, interval);
  if (ended_) return std::nullopt;
  return HeldLocked();
}

std::vector<std::string> BatchStages::HeldLocked() const {
  std::vector<std::string> ids;
  if (!rendering_.empty()) ids.push_back(rendering_);
  for (const v1::Assignment& a : queued_) ids.push_back(a.batch_id());
  for (const RenderedBatch& r : to_package_) ids.push_back(r.assignment.batch_id());
  if (!packaging_.empty()) ids.push_back(packaging_);
  return ids;
}

void BatchStages::End() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ended_ = true;
    cancel_rendering_ = true;
    queued_.clear();
  }
  changed_.notify_all();
}

}  // namespace spriteforge::worker
