#include "coordinator/core/job_book.h"

#include <climits>

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
              [this](const ItemRecord& item) { return KeyOf(item); }, 64, 256,
              [this](const ItemRecord& item) { return Holds(item); }) {}

void JobBook::Add(JobRecord job) {
  queues_.Add(job);
  jobs_[job.id] = std::move(job);
}

void JobBook::Forget(const std::string& job_id) {
  jobs_.erase(job_id);
  queues_.Remove(job_id);
  auto forget = [&job_id](auto& by_source) {
    by_source.erase(by_source.lower_bound({job_id, INT_MIN}), by_source.upper_bound({job_id, INT_MAX}));
  };
  forget(held_);
  forget(references_);
  forget(orphaned_);
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

// ------------------------------------------------------------------ references

bool JobBook::Holds(const ItemRecord& item) {
  if (!item.image.has_reference_from_index() || item.image.reference_sha256_size() > 0) return false;
  const Source source{item.job_id, item.image.reference_from_index()};
  if (!references_.count(source) && !orphaned_.count(source) && !held_.count(source)) Resolve(source);
  if (references_.count(source)) return false;
  if (!orphaned_.count(source)) held_[source].insert(item.index);
  return true;  // an orphan fails in FailOrphans
}

void JobBook::Resolve(const Source& source) {
  const auto& [job_id, index] = source;
  auto page = store_->ItemsPage(job_id, index - 1, 1);
  if (!page.ok()) {
    spdlog::error("job {}: cannot read item {}, the reference of others: {}", job_id, index,
                  std::string(page.status().message()));
    return;  // held: its result lets them go
  }
  if (page->empty() || page->front().index != index) {
    ItemRecord missing;
    missing.job_id = job_id;
    missing.index = index;
    missing.failure = v1::FAILURE_INVALID_REQUEST;
    missing.failure_message = "there is no such item";
    Orphan(source, missing);
    return;
  }
  const ItemRecord& referred = page->front();
  switch (referred.state) {
    case ItemState::kDone:
      if (absl::Status adopted = Adopt(source, referred.image_path); !adopted.ok()) {
        ItemRecord unreadable = referred;
        unreadable.failure = v1::FAILURE_STORAGE;
        unreadable.failure_message = std::string(adopted.message());
        Orphan(source, unreadable);
      }
      return;
    case ItemState::kFailed:
    case ItemState::kCancelled:
      Orphan(source, referred);
      return;
    default:
      return;  // queued or running: held until it is done
  }
}

absl::Status JobBook::Adopt(const Source& source, const std::string& image_path) {
  if (!blobs_) return absl::FailedPreconditionError("no blob folder to serve the result from");
  auto blob = blobs_->Adopt(image_path);
  if (!blob.ok()) return blob.status();
  references_[source] = Reference{blob->sha256, image_path};
  return absl::OkStatus();
}

void JobBook::Orphan(const Source& source, const ItemRecord& failed) {
  Orphaning& o = orphaned_[source];
  o.reason = failed.failure != 0 ? failed.failure
             : failed.state == ItemState::kCancelled ? v1::FAILURE_CANCELLED
                                                     : v1::FAILURE_INTERNAL;
  const std::string what = failed.image.name().empty() ? absl::StrCat("item ", failed.index)
                                                       : absl::StrCat("item ", failed.index, ", ", failed.image.name());
  o.message = absl::StrCat("the set's first image (", what, ") ",
                           failed.state == ItemState::kCancelled ? "was cancelled" : "failed",
                           failed.failure_message.empty() ? "" : ": ", failed.failure_message);
  held_.erase(source);
}

void JobBook::ItemDone(const std::string& job_id, int index, const std::string& image_path) {
  auto held = held_.find({job_id, index});
  if (held == held_.end()) return;  // nobody waits (yet: a later reader asks the store)
  held_.erase(held);
  if (absl::Status adopted = Adopt({job_id, index}, image_path); !adopted.ok()) {
    ItemRecord unreadable;
    unreadable.job_id = job_id;
    unreadable.index = index;
    unreadable.failure = v1::FAILURE_STORAGE;
    unreadable.failure_message = std::string(adopted.message());
    Orphan({job_id, index}, unreadable);
    return;
  }
  if (const JobRecord* job = Active(job_id)) queues_.Reset(*job);  // the waiting items are read again
}

void JobBook::ItemFailed(const ItemRecord& item) {
  if (held_.count({item.job_id, item.index})) Orphan({item.job_id, item.index}, item);
}

std::vector<ItemRecord> JobBook::FailOrphans() {
  std::vector<ItemRecord> out;
  std::set<std::string> jobs;
  while (!orphaned_.empty()) {
    const auto [source, why] = *orphaned_.begin();
    orphaned_.erase(orphaned_.begin());
    const std::string& job_id = source.first;
    // The job's queued items that refer to the source (read again: some were never read).
    std::vector<int> dependants;
    constexpr int kPage = 1000;
    for (int after = -1;;) {
      auto page = store_->QueuedItems(job_id, after, kPage);
      if (!page.ok()) {
        spdlog::error("job {}: {}", job_id, std::string(page.status().message()));
        break;
      }
      for (const ItemRecord& it : *page) {
        if (it.image.has_reference_from_index() && it.image.reference_from_index() == source.second) {
          dependants.push_back(it.index);
        }
      }
      if (static_cast<int>(page->size()) < kPage) break;
      after = page->back().index;
    }
    auto failed = store_->FailQueuedItems(job_id, dependants, why.reason, why.message);
    if (!failed.ok()) {
      spdlog::error("job {}: {}", job_id, std::string(failed.status().message()));
      continue;
    }
    if (failed->empty()) continue;
    spdlog::warn("job {}: {} items failed: {}", job_id, failed->size(), why.message);
    if (const JobRecord* job = Active(job_id)) queues_.Reset(*job);
    jobs.insert(job_id);
    for (ItemRecord& item : *failed) {
      v1::JobEvent event;
      auto* f = event.mutable_item_failed();
      f->set_index(item.index);
      f->set_reason(static_cast<v1::FailureReason>(why.reason));
      f->set_message(why.message);
      Emit(job_id, std::move(event));
      out.push_back(std::move(item));
    }
  }
  FinishIfComplete(jobs);
  return out;
}

void JobBook::FillReference(const std::string& job_id, v1::ImageParams* image) {
  if (!image->has_reference_from_index() || image->reference_sha256_size() > 0) return;
  const Source source{job_id, image->reference_from_index()};
  if (!references_.count(source)) Resolve(source);
  auto ref = references_.find(source);
  if (ref == references_.end()) {
    spdlog::error("job {}: item {}, the reference of a batch's item, has no result", job_id, source.second);
    return;
  }
  // Named now: its grace period starts again (it may have waited long), or it is kept again.
  if (!blobs_->Touch(ref->second.sha256).ok()) {
    if (absl::Status adopted = Adopt(source, ref->second.image_path); !adopted.ok()) {
      spdlog::error("job {}: the result of item {}: {}", job_id, source.second, std::string(adopted.message()));
      return;
    }
    ref = references_.find(source);
  }
  image->add_reference_sha256(ref->second.sha256);
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
