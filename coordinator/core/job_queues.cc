#include "coordinator/core/job_queues.h"

#include <algorithm>
#include "common/status_macros.h"

namespace spriteforge::coordinator {

int JobQueues::KeyId(const BatchKey& key) {
  auto [it, added] = key_ids_.emplace(key, static_cast<int>(keys_.size()));
  if (added) keys_.push_back(key);
  return it->second;
}

void JobQueues::Add(const JobRecord& job) {
  auto& entry = jobs_[job.id];
  if (entry) return;
  entry = std::make_unique<Entry>();
  entry->view.job_id = job.id;
  entry->view.priority = job.priority;
  entry->view.submitted = job.seq;
}

void JobQueues::Remove(const std::string& job_id) { jobs_.erase(job_id); }

void JobQueues::Reset(const JobRecord& job) {
  Remove(job.id);
  Add(job);
}

void JobQueues::Take(const std::string& job_id, int index) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return;
  auto& items = it->second->view.items;
  auto at = std::lower_bound(items.begin(), items.end(), index,
                             [](const QueuedItem& q, int i) { return q.index < i; });
  if (at != items.end() && at->index == index) items.erase(at);
}

void JobQueues::Requeue(const ItemRecord& item) {
  auto it = jobs_.find(item.job_id);
  if (it == jobs_.end()) return;
  Entry& e = *it->second;
  if (item.index > e.cursor) return;  // not read yet: it will be, from the store
  auto& items = e.view.items;
  auto at = std::lower_bound(items.begin(), items.end(), item.index,
                             [](const QueuedItem& q, int i) { return q.index < i; });
  if (at != items.end() && at->index == item.index) return;
  items.insert(at, {item.index, KeyId(key_of_(item))});
}

absl::StatusOr<std::vector<const QueuedJob*>> JobQueues::Jobs() {
  std::vector<const QueuedJob*> out;
  for (auto& [id, e] : jobs_) {
    if (e->view.items.size() < low_ && !e->exhausted) {
      ASSIGN_OR_RETURN(auto more, load_(id, e->cursor, chunk_));
      for (const ItemRecord& it : more) {
        e->cursor = it.index;
        if (holds_ && holds_(it)) continue;
        e->view.items.push_back({it.index, KeyId(key_of_(it))});
      }
      e->exhausted = static_cast<int>(more.size()) < chunk_;
    }
    if (!e->view.items.empty()) out.push_back(&e->view);
  }
  return out;
}

}  // namespace spriteforge::coordinator
