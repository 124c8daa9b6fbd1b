#include "coordinator/service/batch_ledger.h"

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
  batch.sequence = next_sequence_++;
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

void BatchLedger::Remove(const std::string& batch_id) { batches_.erase(batch_id); }

std::vector<std::string> BatchLedger::BatchesOf(const std::string& worker_id) const {
  std::vector<const BatchState*> held;
  for (const auto& [id, b] : batches_) {
    if (b.worker_id == worker_id) held.push_back(&b);
  }
  std::sort(held.begin(), held.end(), [](const BatchState* a, const BatchState* b) { return a->sequence < b->sequence; });
  std::vector<std::string> ids;
  for (const BatchState* b : held) ids.push_back(b->id);
  return ids;
}

bool BatchLedger::HoldsAny(const std::string& worker_id) const {
  for (const auto& [id, b] : batches_) {
    if (b.worker_id == worker_id) return true;
  }
  return false;
}

int BatchLedger::Unrendered(const std::string& worker_id) const {
  int n = 0;
  for (const auto& [id, b] : batches_) n += b.worker_id == worker_id && !b.rendered ? 1 : 0;
  return n;
}

int BatchLedger::RunningItems(const std::string& worker_id) const {
  int n = 0;
  for (const auto& [id, b] : batches_) n += b.worker_id == worker_id ? static_cast<int>(b.items.size()) : 0;
  return n;
}

void BatchLedger::MarkRendered(const std::string& worker_id, const std::string& batch_id) {
  if (BatchState* b = HeldBy(worker_id, batch_id)) b->rendered = true;
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
