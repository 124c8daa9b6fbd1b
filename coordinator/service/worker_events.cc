// The dispatcher's handling of what workers report: messages on their streams and the
// results that come back from the result pipeline.
#include <set>

#include "absl/strings/str_cat.h"
#include "coordinator/service/core_clock.h"
#include "coordinator/service/dispatcher.h"
#include "coordinator/service/results.h"
#include "coordinator/service/worker_check.h"
#include "spdlog/spdlog.h"

namespace spriteforge::coordinator {

std::optional<ResultWork> Dispatcher::OnMessage(WorkerState& w, const v1::WorkerMessage& message) {
  if (auto s = CheckWorkerMessage(message); !s.ok()) {
    DropWorker(w, absl::StrCat("invalid message: ", s.message()));
    return std::nullopt;
  }
  const int64_t now = WallMs();
  workers_.Heard(w, now);
  switch (message.msg_case()) {
    case v1::WorkerMessage::kHeartbeat:
      w.memory = message.heartbeat().memory();
      break;
    case v1::WorkerMessage::kRendered:
      if (batches_.MarkRendered(w.id, message.rendered().batch_id(), now)) Progressed(w, now);
      break;
    case v1::WorkerMessage::kProgress:
      if (batches_.Stepped(w.id, message.progress().batch_id(), message.progress().step(), now)) {
        Progressed(w, now);
        HandleProgress(w, message.progress());
      }
      break;
    case v1::WorkerMessage::kPreview:
      if (batches_.Stepped(w.id, message.preview().batch_id(), message.preview().step(), now)) Progressed(w, now);
      HandlePreview(w, message.preview());
      break;
    case v1::WorkerMessage::kResult:
      // Checks and files run without the lock, in the pipeline or in the caller.
      if (batches_.Renew(w.id, message.result().batch_id(), now)) Progressed(w, now);
      return batches_.TakeResult(w.id, message.result());
    case v1::WorkerMessage::kFailure:
      HandleFailure(w, message.failure());
      break;
    default:
      break;
  }
  // Steps, previews and heartbeats change nothing the planner looks at.
  if (message.msg_case() != v1::WorkerMessage::kProgress && message.msg_case() != v1::WorkerMessage::kHeartbeat &&
      message.msg_case() != v1::WorkerMessage::kPreview) {
    Schedule();
  }
  return std::nullopt;
}

void Dispatcher::Progressed(WorkerState& w, int64_t now) {
  if (workers_.Progressed(w, now)) store_->RenewLeases(w.id, now + options_.lease_ms).IgnoreError();
}

void Dispatcher::HandleProgress(const WorkerState& w, const v1::StepProgress& progress) {
  BatchState* b = batches_.HeldBy(w.id, progress.batch_id());
  if (!b) return;
  const int64_t now = WallMs();
  if (progress.step() > 1) metrics_->ObserveStepSeconds((now - b->last_step_ms) / 1000.0);
  b->last_step_ms = now;
  std::map<std::string, std::vector<int>> by_job;
  for (const ItemKey& k : b->items) by_job[k.job_id].push_back(k.index);
  for (const auto& [job_id, indices] : by_job) {
    v1::JobEvent event;
    auto* p = event.mutable_progress();
    for (int i : indices) p->add_indices(i);
    p->set_worker_id(w.id);
    p->set_step(progress.step());
    p->set_total_steps(progress.total_steps());
    jobs_.Emit(job_id, std::move(event));
  }
}

void Dispatcher::HandlePreview(const WorkerState& w, const v1::BatchPreview& preview) {
  const BatchState* b = batches_.HeldBy(w.id, preview.batch_id());
  if (!b) return;
  for (const v1::PreviewImage& image : preview.images()) {
    // Only the batch's own items, at 1/8 of their size; anything else is not relayed.
    if (!BatchLedger::PreviewedItem(*b, image)) {
      spdlog::debug("worker {}: preview of {}#{} ({}x{}) does not match batch {}", w.id, image.job_id(), image.index(),
                    image.width(), image.height(), preview.batch_id());
      continue;
    }
    v1::JobEvent event;
    v1::ItemPreview* p = event.mutable_preview();
    p->set_index(image.index());
    p->set_step(preview.step());
    p->set_total_steps(preview.total_steps());
    p->set_width(image.width());
    p->set_height(image.height());
    p->set_png(image.png());
    p->set_worker_id(w.id);
    jobs_.Emit(image.job_id(), std::move(event));
  }
}

void Dispatcher::HandleFailure(WorkerState& w, const v1::BatchFailure& failure) {
  const BatchState* b = batches_.HeldBy(w.id, failure.batch_id());
  if (!b) return;
  const int size = static_cast<int>(b->items.size());
  const BatchKey key = b->key;
  v1::FailureReason reason = failure.reason();
  if (reason == v1::FAILURE_OUT_OF_MEMORY) {
    // Lower this worker's cap for the shape; the items return to the queue and the next
    // plan gives them out in smaller batches. A single image that does not fit fails.
    if (w.model) w.model->OnOutOfMemory(size, key.width, key.height);
    spdlog::warn("worker {}: out of memory at batch {} of {}x{}; cap now {}", w.id, size, key.width, key.height,
                 w.model ? w.model->CapFor(key.width, key.height) : 0);
    if (size == 1) reason = v1::FAILURE_INTERNAL;  // counts towards the item's attempts
  } else if (reason != v1::FAILURE_CANCELLED) {
    spdlog::warn("worker {}: batch {} failed: {}", w.id, failure.batch_id(), failure.message());
  }
  ReleaseBatch(failure.batch_id(), reason, failure.message());
}

void Dispatcher::CommitResults(std::vector<StagedResult>& group) {
  const int64_t now = WallMs();
  std::vector<Completion> completions;
  for (const StagedResult& r : group) {
    for (const StagedItem& wr : r.written) {
      completions.push_back({r.batch_id, {wr.item.job_id, wr.item.index}, wr.staged.files.image_path,
                             wr.staged.files.sprite_path});
    }
  }
  // One transaction for the whole group; the files go in place inside it, after its fence check.
  auto accepted = store_->CompleteItems(completions, now, PlaceResultFiles(group));
  DiscardUnplaced(group);
  if (!accepted.ok()) spdlog::error("cannot record results: {}", std::string(accepted.status().message()));
  std::string storage_error;
  bool stored_any = false;
  for (const StagedResult& r : group) {
    if (!r.storage_error.empty()) storage_error = r.storage_error;
    stored_any = stored_any || !r.written.empty();
  }
  if (!storage_error.empty()) {
    const int64_t pause_ms = storage_pause_.Failed(now);
    spdlog::error("results cannot be written ({}); dispatching paused for {} s", storage_error, pause_ms / 1000);
  } else if (stored_any) {
    storage_pause_.Stored();
  }
  size_t next = 0;
  std::set<std::string> jobs;
  for (StagedResult& r : group) {
    int done = 0;
    for (const StagedItem& wr : r.written) {
      const bool ok = accepted.ok() && (*accepted)[next++];
      // Cancelled or reassigned meanwhile: its files were never placed (and what a failed
      // commit placed stays for a later render to replace: it may be a new leader's by now).
      if (!ok) continue;
      ++done;
      invalid_on_.erase({wr.item.job_id, wr.item.index});
      jobs.insert(wr.item.job_id);
      v1::JobEvent event;
      auto* item_done = event.mutable_item_done();
      item_done->set_index(wr.item.index);
      item_done->set_seed(wr.item.image.seed());
      item_done->set_image_path(wr.staged.files.sprite_path.empty() ? wr.staged.files.image_path
                                                                     : wr.staged.files.sprite_path);
      item_done->set_worker_id(r.worker_id);
      jobs_.Emit(wr.item.job_id, std::move(event));
    }
    if (!accepted.ok() && r.storage_error.empty()) r.storage_error = std::string(accepted.status().message());
    metrics_->AddImages(done);
    if (done > 0) {
      metrics_->ObserveImageSeconds(r.total_ms / 1000.0 / done);
      store_->AddWorkerImages(r.worker_id, done, now).IgnoreError();
    }
    WorkerState* worker = workers_.Find(r.worker_id);
    if (worker) {
      workers_.RecordImages(*worker, done, r.total_ms);
      if (const BatchState* b = batches_.Find(r.batch_id)) {
        workers_.RecordPeak(*worker, r.peak_bytes, r.batch_size, b->key.width, b->key.height);
      }
    }
    // Whatever the batch did not deliver goes back to the queue (or fails on storage errors).
    if (batches_.Find(r.batch_id)) {
      if (!r.invalid_error.empty()) ReleaseBatch(r.batch_id, v1::FAILURE_INVALID_RESULT, r.invalid_error);
      else if (!r.storage_error.empty()) ReleaseBatch(r.batch_id, v1::FAILURE_STORAGE, r.storage_error, r.storage_errors);
      else ReleaseBatch(r.batch_id, v1::FAILURE_INTERNAL, "the worker's result lacked this item");
    }
    if (r.invalid_error.empty()) {
      workers_.ClearInvalid(r.worker_id);
    } else if (workers_.StrikeInvalid(r.worker_id, now) && worker) {
      DropWorker(*worker, absl::StrCat("quarantined for ", options_.quarantine_ms / 1000, " s after ",
                                       options_.invalid_result_strikes, " batches of invalid results"));
    }
  }
  jobs_.FinishIfComplete(jobs);
  Schedule();
}

}  // namespace spriteforge::coordinator
