#include "coordinator/core/batch_ledger.h"

#include <algorithm>

namespace spriteforge::coordinator {

ReleaseRule BatchLedger::RuleFor(v1::FailureReason reason, int max_attempts, int storage_attempts) {
  ReleaseRule rule;
  rule.items_fault = reason != v1::FAILURE_WORKER_LOST && reason != v1::FAILURE_OUT_OF_MEMORY &&
                     reason != v1::FAILURE_CANCELLED;
  rule.max_attempts = reason == v1::FAILURE_INVALID_REQUEST ? 1
                      : reason == v1::FAILURE_STORAGE       ? storage_attempts
                                                            : max_attempts;
  return rule;
}

BatchState& BatchLedger::Add(BatchState batch) {
  Holdings& held = by_worker_[batch.worker_id];
  held.batch_ids.push_back(batch.id);
  held.unrendered += batch.rendered ? 0 : 1;
  held.items += static_cast<int>(batch.items.size());
  if (batch.renewed_ms == 0) batch.renewed_ms = batch.started_ms;
  const std::string id = batch.id;
  return batches_[id] = std::move(batch);
}

BatchState* BatchLedger::Find(const std::string& batch_id) {
  auto b = batches_.find(batch_id);
  return b == batches_.end() ? nullptr : &b->second;
}

BatchState* BatchLedger::HeldBy(const std::string& worker_id, const std::string& batch_id) {
  BatchState* b = Find(batch_id);
  return b && b->worker_id == worker_id ? b : nullptr;
}

void BatchLedger::Remove(const std::string& batch_id) {
  auto b = batches_.find(batch_id);
  if (b == batches_.end()) return;
  if (auto w = by_worker_.find(b->second.worker_id); w != by_worker_.end()) {
    Holdings& held = w->second;
    held.batch_ids.erase(std::remove(held.batch_ids.begin(), held.batch_ids.end(), batch_id), held.batch_ids.end());
    held.unrendered -= b->second.rendered ? 0 : 1;
    held.items -= static_cast<int>(b->second.items.size());
    if (held.batch_ids.empty()) by_worker_.erase(w);
  }
  batches_.erase(b);
}

std::vector<std::string> BatchLedger::BatchesOf(const std::string& worker_id) const {
  auto w = by_worker_.find(worker_id);
  return w == by_worker_.end() ? std::vector<std::string>{} : w->second.batch_ids;
}

bool BatchLedger::HoldsAny(const std::string& worker_id) const { return by_worker_.count(worker_id) > 0; }

int BatchLedger::Unrendered(const std::string& worker_id) const {
  auto w = by_worker_.find(worker_id);
  return w == by_worker_.end() ? 0 : w->second.unrendered;
}

int BatchLedger::RunningItems(const std::string& worker_id) const {
  auto w = by_worker_.find(worker_id);
  return w == by_worker_.end() ? 0 : w->second.items;
}

bool BatchLedger::Stepped(const std::string& worker_id, const std::string& batch_id, int step, int64_t now) {
  BatchState* b = HeldBy(worker_id, batch_id);
  if (!b || step <= b->last_step) return false;
  const int steps = b->records.empty() ? 0 : b->records.front().sampling.steps();
  if (steps > 0 && step > steps) return false;  // no batch runs more steps than it was given
  b->last_step = step;
  return Renew(worker_id, batch_id, now);
}

bool BatchLedger::MarkRendered(const std::string& worker_id, const std::string& batch_id, int64_t now) {
  BatchState* b = HeldBy(worker_id, batch_id);
  if (!b || b->rendered) return false;
  b->rendered = true;
  by_worker_[worker_id].unrendered -= 1;
  return Renew(worker_id, batch_id, now);
}

bool BatchLedger::Renew(const std::string& worker_id, const std::string& batch_id, int64_t now) {
  if (!HeldBy(worker_id, batch_id)) return false;
  const std::vector<std::string>& ids = by_worker_[worker_id].batch_ids;
  for (auto it = std::find(ids.begin(), ids.end(), batch_id); it != ids.end(); ++it) {
    if (BatchState* b = Find(*it)) b->renewed_ms = std::max(b->renewed_ms, now);
  }
  return true;
}

std::vector<std::string> BatchLedger::Overdue(int64_t now, int64_t lease_ms) const {
  std::vector<std::string> overdue;
  for (const auto& [id, b] : batches_) {
    if (now - b.renewed_ms > lease_ms) overdue.push_back(id);
  }
  return overdue;
}

std::optional<ResultWork> BatchLedger::TakeResult(const std::string& worker_id, v1::BatchResultMsg result) {
  const BatchState* b = HeldBy(worker_id, result.batch_id());
  if (!b) return std::nullopt;
  ResultWork work;
  work.batch_id = b->id;
  work.worker_id = worker_id;
  work.batch_size = static_cast<int>(b->items.size());
  work.model = b->key.model;
  work.items = b->records;
  work.postprocessed_jobs = b->postprocessed_jobs;
  work.result = std::move(result);
  return work;
}

const ItemRecord* BatchLedger::PreviewedItem(const BatchState& batch, const v1::PreviewImage& image) {
  const ItemRecord* item = nullptr;
  for (const ItemRecord& r : batch.records) {
    if (r.job_id == image.job_id() && r.index == image.index()) item = &r;
  }
  if (!item || image.width() * 8 != static_cast<int>(item->sampling.width()) ||
      image.height() * 8 != static_cast<int>(item->sampling.height())) {
    return nullptr;
  }
  return item;
}

int64_t StoragePause::Failed(int64_t now) {
  backoff_ms_ = std::min<int64_t>(30000, std::max<int64_t>(1000, backoff_ms_ * 2));
  until_ms_ = now + backoff_ms_;
  return backoff_ms_;
}

}  // namespace spriteforge::coordinator
