#include "scheduling/planner.h"

#include <algorithm>
#include <set>

namespace spriteforge::coordinator {
namespace {

bool Serves(const WorkerView& w, const std::string& model) {
  return std::find(w.models.begin(), w.models.end(), model) != w.models.end();
}

}  // namespace

uint64_t LoraBytes(const BatchKey& key, const WorkerView& worker) {
  uint64_t bytes = key.uploaded_lora_bytes;
  for (const std::string& name : key.named_loras) {
    if (auto it = worker.lora_bytes.find(name); it != worker.lora_bytes.end()) bytes += it->second;
  }
  return bytes;
}

std::vector<Assignment> Plan(const std::vector<PendingItem>& pending, const std::vector<WorkerView>& workers,
                             const std::map<std::string, int64_t>& last_served) {
  // A job served in this call counts as served last, so several idle workers take turns
  // between jobs too.
  std::map<std::string, int64_t> served_at = last_served;
  int64_t now = INT64_MIN + 1;
  for (const auto& [job, at] : last_served) now = std::max(now, at + 1);
  auto served = [&](const std::string& job) {
    auto it = served_at.find(job);
    return it == served_at.end() ? INT64_MIN : it->second;
  };
  std::vector<const PendingItem*> order;
  for (const auto& item : pending) order.push_back(&item);
  // The order in which items are offered: policy rules 1 and 2, then item order.
  auto offer_order = [&](const PendingItem* a, const PendingItem* b) {
    if (a->priority != b->priority) return a->priority > b->priority;
    if (a->job_id != b->job_id) {
      int64_t sa = served(a->job_id), sb = served(b->job_id);
      if (sa != sb) return sa < sb;
      if (a->job_submitted != b->job_submitted) return a->job_submitted < b->job_submitted;
      return a->job_id < b->job_id;
    }
    return a->index < b->index;
  };

  std::set<const PendingItem*> taken;
  std::vector<Assignment> out;
  for (const WorkerView& worker : workers) {
    if (!worker.idle || !worker.memory) continue;
    std::stable_sort(order.begin(), order.end(), offer_order);
    for (const PendingItem* head : order) {
      if (taken.count(head) || !Serves(worker, head->key.model)) continue;
      // The LoRAs' weights are counted with the fixed part: they shrink the budget left for images.
      const uint64_t lora = LoraBytes(head->key, worker);
      const uint64_t budget = worker.budget_bytes > lora ? worker.budget_bytes - lora : 0;
      const int size = worker.memory->MaxBatch(head->key.width, head->key.height, budget, worker.max_batch);
      if (size == 0) continue;  // this shape does not fit this worker; try the next item
      Assignment a{worker.id, head->key, {}};
      // The head's job first, then the rest of the same key and priority in offer order.
      for (int pass = 0; pass < 2 && static_cast<int>(a.items.size()) < size; ++pass) {
        for (const PendingItem* item : order) {
          if (static_cast<int>(a.items.size()) >= size) break;
          if (taken.count(item) || !(item->key == head->key) || item->priority != head->priority) continue;
          if (pass == 0 && item->job_id != head->job_id) continue;
          a.items.push_back(*item);
          taken.insert(item);
        }
      }
      served_at[head->job_id] = now++;
      out.push_back(std::move(a));
      break;
    }
  }
  return out;
}

}  // namespace spriteforge::coordinator
