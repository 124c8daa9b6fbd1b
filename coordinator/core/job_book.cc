#include "coordinator/core/job_book.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/core/convert.h"
#include "coordinator/core/core_clock.h"
#include "coordinator/core/results.h"
#include "spdlog/spdlog.h"

namespace spriteforge::coordinator {
namespace {

bool Finished(JobState s) { return s == JobState::kDone || s == JobState::kFailed || s == JobState::kCancelled; }

}  // namespace

JobBook::JobBook(Store* store, BlobStore* blobs, Outbox* outbox, std::string output_dir,
                 int64_t unserved_timeout_ms, Serves serves, Lacks lacks)
    : store_(store),
      blobs_(blobs),
      outbox_(outbox),
      output_dir_(std::move(output_dir)),
      unserved_timeout_ms_(unserved_timeout_ms),
      serves_(std::move(serves)),
      lacks_(std::move(lacks)),
      queues_([this](const std::string& job_id, int after, int limit) {
                return store_->QueuedItems(job_id, after, limit);
              },
              [this](const ItemRecord& item) { return KeyOf(item); }) {}

void JobBook::Add(JobRecord job) {
  queues_.Add(job);
  jobs_[job.id] = std::move(job);
}

void JobBook::Forget(const std::string& job_id) {
  jobs_.erase(job_id);
  queues_.Remove(job_id);
}

absl::StatusOr<JobRecord> JobBook::Get(const std::string& job_id) {
  if (auto it = jobs_.find(job_id); it != jobs_.end()) return it->second;
  auto job = store_->GetJob(job_id);
  if (job.ok() && !Finished(job->state)) jobs_[job_id] = *job;
  return job;
}

const JobRecord* JobBook::Active(const std::string& job_id) const {
  auto it = jobs_.find(job_id);
  return it == jobs_.end() ? nullptr : &it->second;
}

v1::Job JobBook::Snapshot(const JobRecord& cached) {
  auto counts = store_->Counts(cached.id);
  JobRecord job = cached;
  // The store marks a job running when its first batch is leased; a cached record from
  // before then is refreshed so the state and start time say so.
  if (job.state == JobState::kQueued && counts.ok() && counts->running + counts->done + counts->failed > 0) {
    if (auto fresh = store_->GetJob(job.id); fresh.ok()) {
      job = *fresh;
      if (jobs_.count(job.id)) jobs_[job.id] = job;
    }
  }
  v1::Job out = ToProto(job);
  out.set_output_dir(JobDir(output_dir_, job.id));
  if (!Finished(job.state) && !serves_(job.model)) {
    out.set_waiting_reason(absl::StrCat("no connected worker serves model ", job.model));
    if (unserved_timeout_ms_ > 0) {
      absl::StrAppend(out.mutable_waiting_reason(), " (its queued items fail after ", unserved_timeout_ms_ / 1000.0,
                      " s without one)");
    }
  }
  if (counts.ok()) {
    *out.mutable_counts() = ToProto(*counts);
    const int64_t end = job.finished_ms ? job.finished_ms : WallMs();
    const double seconds = job.started_ms ? (end - job.started_ms) / 1000.0 : 0;
    if (seconds > 0 && counts->done > 0) {
      out.set_images_per_second(counts->done / seconds);
      out.set_eta_seconds((counts->queued + counts->running) / out.images_per_second());
    }
  }
  return out;
}

void JobBook::Send(const std::string& job_id, const v1::JobEvent& event) {
  for (const auto& [handle, w] : watchers_) {
    if (w.job_id == job_id) outbox_->Post([sink = w.sink, event] { sink(event); });
  }
}

void JobBook::Emit(const std::string& job_id, v1::JobEvent event) {
  bool any = false;
  for (const auto& [handle, w] : watchers_) any = any || w.job_id == job_id;
  if (!any) return;
  event.set_unix_ms(WallMs());
  event.set_job_id(job_id);
  if (auto job = Get(job_id); job.ok()) *event.mutable_job() = Snapshot(*job);
  Send(job_id, event);
}

absl::StatusOr<int64_t> JobBook::Watch(const std::string& job_id, EventSink sink) {
  ASSIGN_OR_RETURN(auto job, Get(job_id));
  const int64_t handle = next_watch_++;
  v1::JobEvent snapshot;
  snapshot.set_unix_ms(WallMs());
  snapshot.set_job_id(job_id);
  *snapshot.mutable_job() = Snapshot(job);
  snapshot.mutable_queued()->set_items(snapshot.job().counts().total());
  outbox_->Post([sink, snapshot] { sink(snapshot); });
  if (Finished(job.state)) {
    snapshot.mutable_job_done()->set_state(static_cast<v1::JobState>(job.state));
    outbox_->Post([sink, snapshot] { sink(snapshot); });
  }
  watchers_[handle] = Watcher{job_id, std::move(sink)};
  return handle;
}

void JobBook::Unwatch(int64_t handle) { watchers_.erase(handle); }

void JobBook::FinishIfComplete(const std::set<std::string>& job_ids) {
  for (const std::string& id : job_ids) {
    auto job = store_->FinishJobIfComplete(id, WallMs());
    if (!job.ok()) {
      spdlog::error("job {}: {}", id, std::string(job.status().message()));
      continue;
    }
    if (!Finished(job->state)) {
      jobs_[id] = *job;
      continue;
    }
    Forget(id);
    auto counts = store_->Counts(id);
    if (counts.ok()) {
      auto pages = [&](int after, int limit) { return store_->ItemsPage(id, after, limit); };
      if (auto s = WriteJobSummary(output_dir_, *job, *counts, pages); !s.ok()) {
        spdlog::error("job {}: job.json: {}", id, std::string(s.message()));
      }
    }
    spdlog::info("job {} finished: {}", id, JobStateName(job->state));
    v1::JobEvent event;
    event.mutable_job_done()->set_state(static_cast<v1::JobState>(job->state));
    Emit(id, std::move(event));
  }
}

int JobBook::CheckUnserved(int64_t now) {
  for (auto it = unserved_since_.begin(); it != unserved_since_.end();) {
    it = jobs_.count(it->first) ? std::next(it) : unserved_since_.erase(it);
  }
  std::set<std::string> timed_out;
  const std::map<std::string, std::string> missing = MissingModels();
  std::map<std::string, std::string> reasons;  // job id -> what no connected worker has
  for (const auto& [id, job] : jobs_) {
    std::string reason;
    if (!serves_(job.model)) {
      reason = absl::StrCat("model ", job.model);
    } else if (auto m = missing.find(id); m != missing.end()) {
      reason = absl::StrCat(m->second, " with model ", job.model);
    }
    if (reason.empty()) {
      unserved_since_.erase(id);
      continue;
    }
    reasons[id] = reason;
    auto [since, first] = unserved_since_.emplace(id, now);
    if (first) {
      spdlog::warn("job {}: no connected worker serves {}", id, reason);
      v1::JobEvent event;
      event.mutable_waiting()->set_reason(absl::StrCat("no connected worker serves ", reason));
      Emit(id, std::move(event));
    }
    if (unserved_timeout_ms_ > 0 && now - since->second >= unserved_timeout_ms_) timed_out.insert(id);
  }
  int failed_items = 0;
  for (const std::string& id : timed_out) {
    const std::string message =
        absl::StrCat("no connected worker served ", reasons[id], " for ", unserved_timeout_ms_ / 1000.0, " s");
    auto failed = store_->FailQueuedItems(id, v1::FAILURE_MODEL_UNAVAILABLE, message);
    if (!failed.ok()) {
      spdlog::error("job {}: {}", id, std::string(failed.status().message()));
      continue;
    }
    spdlog::warn("job {}: {} queued items failed: {}", id, failed->size(), message);
    failed_items += static_cast<int>(failed->size());
    queues_.Reset(jobs_[id]);  // its window held items that are no longer queued
    // One snapshot for all the events: a large job's items fail together.
    v1::JobEvent event;
    event.set_unix_ms(WallMs());
    event.set_job_id(id);
    *event.mutable_job() = Snapshot(jobs_[id]);
    for (const ItemRecord& item : *failed) {
      auto* f = event.mutable_item_failed();
      f->set_index(item.index);
      f->set_reason(v1::FAILURE_MODEL_UNAVAILABLE);
      f->set_message(message);
      Send(id, event);
    }
    unserved_since_.erase(id);
    FinishIfComplete({id});
  }
  return failed_items;
}

BatchKey JobBook::KeyOf(const ItemRecord& item) {
  auto job = jobs_.find(item.job_id);
  BatchKey key = ::spriteforge::coordinator::KeyOf(job == jobs_.end() ? std::string() : job->second.model,
                                                   item.sampling, item.image);
  for (const v1::LoraRef& lora : item.sampling.loras()) key.uploaded_lora_bytes += BlobSize(lora.sha256());
  for (const v1::ControlNetRef& net : item.sampling.controlnets()) key.uploaded_control_bytes += BlobSize(net.sha256());
  key.uploaded_control_bytes += BlobSize(item.sampling.ip_adapter().sha256());
  key.uploaded_control_bytes += BlobSize(item.sampling.ip_adapter().encoder_sha256());
  return key;
}

uint64_t JobBook::BlobSize(const std::string& sha256) {
  if (sha256.empty()) return 0;
  auto size = blob_sizes_.find(sha256);
  if (size == blob_sizes_.end()) {
    auto bytes = blobs_ ? blobs_->Size(sha256) : absl::StatusOr<uint64_t>(0);
    size = blob_sizes_.emplace(sha256, bytes.ok() ? *bytes : 0).first;
  }
  return size->second;
}

std::map<std::string, std::string> JobBook::MissingModels() {
  std::map<std::string, std::string> out;
  if (!lacks_) return out;
  auto queued = queues_.Jobs();
  if (!queued.ok()) return out;
  std::map<int, std::string> by_key;  // each distinct key asked once
  for (const QueuedJob* job : *queued) {
    for (const QueuedItem& item : job->items) {
      auto [it, added] = by_key.emplace(item.key, "");
      if (added) it->second = lacks_(queues_.keys()[item.key]);
      if (!it->second.empty()) {
        out.emplace(job->job_id, it->second);
        break;
      }
    }
  }
  return out;
}

}  // namespace spriteforge::coordinator
