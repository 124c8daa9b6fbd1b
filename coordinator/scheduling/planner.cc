#include "coordinator/scheduling/planner.h"

#include <algorithm>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "common/sampling.h"

namespace spriteforge::coordinator {
namespace {

bool Serves(const WorkerView& w, const std::string& model) {
  return std::find(w.models.begin(), w.models.end(), model) != w.models.end();
}

// One job during a planning call: which of its window's items are taken, and from where
// the untaken ones start.
struct JobCursor {
  const QueuedJob* job;
  int64_t served;
  std::vector<bool> taken;
  size_t first_free = 0;

  void Take(size_t i) {
    taken[i] = true;
    while (first_free < taken.size() && taken[first_free]) ++first_free;
  }
};

// Policy rules 1 and 2: higher priority, then least recently served, then older.
struct OfferOrder {
  bool operator()(const JobCursor* a, const JobCursor* b) const {
    return std::make_tuple(-a->job->priority, a->served, a->job->submitted, std::cref(a->job->job_id)) <
           std::make_tuple(-b->job->priority, b->served, b->job->submitted, std::cref(b->job->job_id));
  }
};

}  // namespace

BatchKey KeyOf(const std::string& model, const v1::SamplingParams& sampling, const v1::ImageParams& image) {
  BatchKey key{BatchKeyOf(model, sampling, image), model, sampling.width(), sampling.height()};
  for (const v1::LoraRef& lora : sampling.loras()) {
    if (lora.sha256().empty()) key.named_loras.push_back(lora.name());
  }
  key.controlnets = sampling.controlnets_size();
  for (const v1::ControlNetRef& net : sampling.controlnets()) {
    if (net.sha256().empty()) key.named_controlnets.push_back(net.name());
  }
  if (sampling.has_ip_adapter()) {
    const v1::IpAdapterRef& ip = sampling.ip_adapter();
    key.ip_adapter = true;
    if (ip.sha256().empty()) key.named_ip_adapter = ip.name();
    if (ip.encoder_sha256().empty()) key.named_encoder = ip.encoder().empty() ? "image_encoder" : ip.encoder();
  }
  return key;
}

NamedModels NamedModelsOf(const v1::Register& registration) {
  NamedModels out;
  for (const v1::LoraFile& f : registration.controlnet_files()) out.controlnets[f.name()] = f.size_bytes();
  for (const v1::LoraFile& f : registration.ip_adapter_files()) out.ip_adapters[f.name()] = f.size_bytes();
  for (const v1::LoraFile& f : registration.image_encoder_files()) out.encoders[f.name()] = f.size_bytes();
  return out;
}

std::string MissingModel(const BatchKey& key, const NamedModels& models) {
  for (const std::string& name : key.named_controlnets) {
    if (!models.controlnets.count(name)) return absl::StrCat("ControlNet '", name, "'");
  }
  if (!key.named_ip_adapter.empty() && !models.ip_adapters.count(key.named_ip_adapter)) {
    return absl::StrCat("IP-Adapter '", key.named_ip_adapter, "'");
  }
  if (!key.named_encoder.empty() && !models.encoders.count(key.named_encoder)) {
    return absl::StrCat("image encoder '", key.named_encoder, "'");
  }
  return "";
}

uint64_t ControlBytes(const BatchKey& key, const WorkerView& worker) {
  if (key.controlnets == 0 && !key.ip_adapter) return 0;
  uint64_t named = 0;
  for (const std::string& name : key.named_controlnets) {
    if (auto it = worker.named.controlnets.find(name); it != worker.named.controlnets.end()) named += it->second;
  }
  if (auto it = worker.named.ip_adapters.find(key.named_ip_adapter); it != worker.named.ip_adapters.end()) {
    named += it->second;
  }
  if (auto it = worker.named.encoders.find(key.named_encoder); it != worker.named.encoders.end()) named += it->second;
  const uint64_t known = named + key.uploaded_control_bytes;
  // Sizes unknown (nothing reported, no blob sizes): the constants of a full SDXL ControlNet
  // and of IP-Adapter Plus with its ViT-H encoder.
  const uint64_t estimate = key.controlnets * kControlNetBytes + (key.ip_adapter ? kIpAdapterBytes : 0);
  return known > 0 ? known : estimate;
}

uint64_t LoraBytes(const BatchKey& key, const WorkerView& worker) {
  uint64_t bytes = key.uploaded_lora_bytes;
  for (const std::string& name : key.named_loras) {
    if (auto it = worker.lora_bytes.find(name); it != worker.lora_bytes.end()) bytes += it->second;
  }
  return bytes;
}

std::vector<Assignment> PlanJobs(const std::vector<const QueuedJob*>& jobs, const std::vector<BatchKey>& keys,
                                 const std::vector<WorkerView>& workers,
                                 const std::map<std::string, int64_t>& last_served) {
  // A job served in this call counts as served last, so several idle workers take turns
  // between jobs too.
  int64_t now = INT64_MIN + 1;
  for (const auto& [job, at] : last_served) now = std::max(now, at + 1);
  std::vector<JobCursor> cursors;
  cursors.reserve(jobs.size());
  for (const QueuedJob* job : jobs) {
    if (job->items.empty()) continue;
    auto it = last_served.find(job->job_id);
    cursors.push_back({job, it == last_served.end() ? INT64_MIN : it->second, std::vector<bool>(job->items.size())});
  }
  std::set<JobCursor*, OfferOrder> order;
  for (JobCursor& c : cursors) order.insert(&c);

  std::vector<Assignment> out;
  for (const WorkerView& worker : workers) {
    if (!worker.idle || !worker.memory) continue;
    // The head: the first untaken item in offer order that this worker serves and fits.
    JobCursor* head = nullptr;
    size_t head_at = 0;
    int size = 0;
    for (JobCursor* c : order) {
      for (size_t i = c->first_free; i < c->taken.size() && !head; ++i) {
        if (c->taken[i] || !MayTake(worker, c->job->job_id, c->job->items[i].index)) continue;
        const BatchKey& key = keys[c->job->items[i].key];
        if (!Serves(worker, key.model) || !MissingModel(key, worker.named).empty()) continue;
        // The LoRAs' and controls' weights are counted with the fixed part: they shrink the
        // budget left for images; each ControlNet adds activations per image.
        const uint64_t fixed = LoraBytes(key, worker) + ControlBytes(key, worker);
        const uint64_t budget = worker.budget_bytes > fixed ? worker.budget_bytes - fixed : 0;
        size = worker.memory->MaxBatch(key.width, key.height, budget, worker.max_batch,
                                       key.controlnets * kControlNetPerImageBytesAt1mp);
        if (size == 0) continue;  // this shape does not fit this worker; try the next item
        head = c;
        head_at = i;
      }
      if (head) break;
    }
    if (!head) continue;
    const int head_key = head->job->items[head_at].key;
    Assignment a{worker.id, keys[head_key], {}};
    auto take_from = [&](JobCursor* c, size_t from) {
      for (size_t i = from; i < c->taken.size() && static_cast<int>(a.items.size()) < size; ++i) {
        if (c->taken[i] || c->job->items[i].key != head_key || !MayTake(worker, c->job->job_id, c->job->items[i].index)) {
          continue;
        }
        a.items.push_back({c->job->job_id, c->job->items[i].index, c->job->priority, c->job->submitted, a.key});
        c->Take(i);
      }
    };
    // Policy rule 3: the head's job first, then the rest of the same key and priority in
    // offer order.
    take_from(head, head_at);
    for (JobCursor* c : order) {
      if (static_cast<int>(a.items.size()) >= size) break;
      if (c->job->priority < head->job->priority) break;
      if (c != head && c->job->priority == head->job->priority) take_from(c, c->first_free);
    }
    order.erase(head);
    head->served = now++;
    if (head->first_free < head->taken.size()) order.insert(head);
    out.push_back(std::move(a));
  }
  return out;
}

std::vector<Assignment> Plan(const std::vector<PendingItem>& pending, const std::vector<WorkerView>& workers,
                             const std::map<std::string, int64_t>& last_served) {
  std::vector<BatchKey> keys;
  std::map<BatchKey, int> key_ids;
  std::map<std::string, QueuedJob> by_job;
  for (const PendingItem& p : pending) {
    auto [k, added] = key_ids.emplace(p.key, static_cast<int>(keys.size()));
    if (added) keys.push_back(p.key);
    QueuedJob& job = by_job[p.job_id];
    job.job_id = p.job_id;
    job.priority = p.priority;
    job.submitted = p.job_submitted;
    job.items.push_back({p.index, k->second});
  }
  std::vector<const QueuedJob*> jobs;
  for (auto& [id, job] : by_job) {
    std::stable_sort(job.items.begin(), job.items.end(),
                     [](const QueuedItem& a, const QueuedItem& b) { return a.index < b.index; });
    jobs.push_back(&job);
  }
  return PlanJobs(jobs, keys, workers, last_served);
}

}  // namespace spriteforge::coordinator
