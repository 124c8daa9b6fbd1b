#include "coordinator/core/worker_registry.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace spriteforge::coordinator {

WorkerRegistry::WorkerRegistry(WorkerRules rules)
    : rules_(rules), quarantine_(rules.invalid_result_strikes, rules.quarantine_ms) {}

absl::StatusOr<WorkerState*> WorkerRegistry::Register(std::shared_ptr<WorkerChannel> channel, const v1::Register& reg,
                                                      const std::string& id, int64_t now,
                                                      const std::string& credential) {
  RETURN_IF_ERROR(quarantine_.Admit(id, now));
  if (!credential.empty()) {
    if (auto s = quarantine_.Admit(credential, now); !s.ok()) {
      return absl::PermissionDeniedError(absl::StrCat("worker ", id, " refused: ", s.message()));
    }
  }
  // A connected worker keeps its id: a second stream claiming it would take its batches.
  if (auto it = workers_.find(id); it != workers_.end() && it->second.channel && it->second.channel != channel) {
    return absl::AlreadyExistsError(absl::StrCat("worker ", id, " is already connected"));
  }
  WorkerState& w = workers_[id];
  w.id = id;
  w.credential = credential;
  if (w.channel) by_channel_.erase(w.channel.get());
  w.channel = std::move(channel);
  by_channel_[w.channel.get()] = id;
  w.registration = reg;
  w.registration.set_worker_id(id);
  w.memory = reg.memory();
  w.last_seen_ms = now;
  w.last_progress_ms = now;
  w.prefetch = std::clamp(reg.prefetch(), 0, rules_.max_prefetch);
  // The memory model starts from the worker's own weights and the SDXL per-image prior,
  // then learns from the calibrations it measured and every batch it reports.
  const uint64_t fixed = std::max<uint64_t>(reg.memory().weights_bytes() * 23 / 20, 1);
  w.model = std::make_unique<MemoryModel>(MemoryPrior{
      reg.memory().weights_bytes() ? fixed : kSdxlFp16Prior.fixed_bytes, kSdxlFp16Prior.per_image_bytes_at_1mp});
  for (const v1::Calibration& c : reg.calibrations()) {
    if (c.peak_bytes() > 0) w.model->Observe(c.batch(), c.width(), c.height(), c.peak_bytes());
  }
  return &w;
}

std::string WorkerRegistry::QuarantineKey(const std::string& worker_id) {
  const WorkerState* w = Find(worker_id);
  return w && !w->credential.empty() ? w->credential : worker_id;
}

bool WorkerRegistry::StrikeInvalid(const std::string& worker_id, int64_t now) {
  const std::string key = QuarantineKey(worker_id);
  if (!quarantine_.Strike(key, now)) return false;
  // The id too, so it is refused by name whatever it connects with next.
  if (key != worker_id) quarantine_.Quarantined(worker_id, now);
  return true;
}

void WorkerRegistry::ClearInvalid(const std::string& worker_id) { quarantine_.Clear(QuarantineKey(worker_id)); }

WorkerState* WorkerRegistry::Of(WorkerChannel* channel) {
  auto it = by_channel_.find(channel);
  if (it == by_channel_.end()) return nullptr;
  auto w = workers_.find(it->second);
  return w == workers_.end() ? nullptr : &w->second;
}

WorkerState* WorkerRegistry::Find(const std::string& id) {
  auto w = workers_.find(id);
  return w == workers_.end() ? nullptr : &w->second;
}

WorkerState* WorkerRegistry::Disconnect(WorkerChannel* channel) {
  WorkerState* w = Of(channel);
  if (!w) return nullptr;
  by_channel_.erase(channel);
  w->channel = nullptr;  // the stream is already gone; nothing to close
  return w;
}

std::shared_ptr<WorkerChannel> WorkerRegistry::Detach(WorkerState& w) {
  if (w.channel) by_channel_.erase(w.channel.get());
  return std::exchange(w.channel, nullptr);
}

void WorkerRegistry::Heard(WorkerState& w, int64_t now) { w.last_seen_ms = now; }

// A heartbeat proves the process is up, not that its engine moves: leases are renewed
// only while real progress comes, so a worker whose engine hangs loses its batches after
// one lease.
bool WorkerRegistry::Progressed(WorkerState& w, int64_t now) {
  w.last_progress_ms = now;
  if (now - w.renewed_ms < rules_.lease_ms / 10) return false;
  w.renewed_ms = now;
  return true;
}

void WorkerRegistry::Assigned(WorkerState& w, bool held_nothing, int64_t now) {
  if (held_nothing) w.last_progress_ms = now;
}

std::vector<WorkerState*> WorkerRegistry::Silent(int64_t now) {
  std::vector<WorkerState*> silent;
  for (auto& [id, w] : workers_) {
    if (w.channel && now - w.last_seen_ms > rules_.lease_ms) silent.push_back(&w);
  }
  return silent;
}

std::vector<std::string> WorkerRegistry::Forget(int64_t now, int64_t retention_ms) {
  std::vector<std::string> forgotten;
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (!it->second.channel && now - it->second.last_seen_ms > retention_ms) {
      forgotten.push_back(it->first);
      it = workers_.erase(it);
    } else {
      ++it;
    }
  }
  return forgotten;
}

bool WorkerRegistry::Serves(const std::string& model) const {
  for (const auto& [id, w] : workers_) {
    if (!w.channel) continue;
    for (const std::string& m : w.registration.models()) {
      if (m == model) return true;
    }
  }
  return false;
}

std::string WorkerRegistry::Lacks(const BatchKey& key) const {
  std::string lacks;
  for (const auto& [id, w] : workers_) {
    if (!w.channel) continue;
    const auto& models = w.registration.models();
    if (std::find(models.begin(), models.end(), key.model) == models.end()) continue;
    const std::string missing = MissingModel(key, NamedModelsOf(w.registration));
    if (missing.empty()) return "";
    if (lacks.empty()) lacks = missing;
  }
  return lacks;
}

void WorkerRegistry::RecordImages(WorkerState& w, int done, double total_ms) {
  w.images_done += done;
  if (total_ms > 0 && done > 0) {
    const double rate = done / (total_ms / 1000.0);
    w.images_per_second = w.images_per_second > 0 ? 0.7 * w.images_per_second + 0.3 * rate : rate;
  }
}

void WorkerRegistry::RecordPeak(WorkerState& w, uint64_t peak_bytes, int batch_size, int width, int height) {
  if (peak_bytes == 0) return;
  w.peak_bytes = std::max(w.peak_bytes, peak_bytes);
  if (w.model) w.model->Observe(batch_size, width, height, peak_bytes);
}

}  // namespace spriteforge::coordinator
