#include "coordinator/core/dispatcher.h"

#include <algorithm>
#include <limits>
#include <set>

#include "absl/strings/str_cat.h"
#include "coordinator/core/core_clock.h"
#include "coordinator/core/results.h"
#include "coordinator/core/worker_check.h"
#include "spdlog/spdlog.h"

namespace spriteforge::coordinator {

Dispatcher::Dispatcher(std::unique_ptr<Store> store, BlobStore* blobs, Outbox* outbox, Metrics* metrics,
                       const CoordinatorOptions& options)
    : options_(options),
      store_(std::move(store)),
      outbox_(outbox),
      metrics_(metrics),
      workers_(WorkerRules{options.lease_ms, options.max_prefetch, options.invalid_result_strikes,
                           options.quarantine_ms}),
      jobs_(store_.get(), blobs, outbox, options.output_dir, options.unserved_model_timeout_ms,
            [this](const std::string& model) { return workers_.Serves(model); },
            [this](const BatchKey& key) { return workers_.Lacks(key); }) {}

void Dispatcher::Send(const WorkerState& worker, const v1::CoordinatorMessage& message) {
  if (!worker.channel) return;
  outbox_->Post([channel = worker.channel, message] { channel->Send(message); });
}

void Dispatcher::StopBatches(const std::vector<std::string>& batch_ids) {
  for (const std::string& batch_id : batch_ids) {
    const BatchState* b = batches_.Find(batch_id);
    const WorkerState* w = b ? workers_.Find(b->worker_id) : nullptr;
    if (!w) continue;
    v1::CoordinatorMessage msg;
    msg.mutable_cancel()->set_batch_id(batch_id);
    Send(*w, msg);
  }
}

// ------------------------------------------------------------------ planning

// Workers take batches while they hold fewer unrendered ones than 1 + prefetch, one per
// planning round, so the rounds interleave workers and jobs fairly. Rounds go on while they
// assign something: a round hands out at most the queue windows it sees.
void Dispatcher::Schedule() {
  for (int round = 0; round < 4096; ++round) {
    if (!ScheduleRound()) return;
  }
}

bool Dispatcher::ScheduleRound() {
  FailOrphans();  // items whose reference failed, found while the windows were read
  if (storage_pause_.Paused(WallMs())) return false;
  auto avoid = ItemsToAvoid();
  std::vector<WorkerView> views;
  for (auto& [id, w] : workers_.all()) {
    if (!w.channel || batches_.Unrendered(id) > w.prefetch) continue;
    WorkerView v;
    v.id = id;
    v.models.assign(w.registration.models().begin(), w.registration.models().end());
    v.budget_bytes = w.budget_bytes();
    v.max_batch = w.registration.max_batch();
    v.idle = true;
    v.memory = w.model.get();
    v.named = NamedModelsOf(w.registration);
    for (const v1::LoraFile& lora : w.registration.lora_files()) v.lora_bytes[lora.name()] = lora.size_bytes();
    if (auto a = avoid.find(id); a != avoid.end()) v.avoid = std::move(a->second);
    views.push_back(std::move(v));
  }
  if (views.empty()) return false;
  auto queued = jobs_.queues().Jobs();
  if (!queued.ok()) {
    spdlog::error("cannot read the queue: {}", std::string(queued.status().message()));
    return false;
  }
  if (queued->empty()) return false;
  const int64_t now = WallMs();
  const std::vector<Assignment> plan = PlanJobs(*queued, jobs_.queues().keys(), views, last_served_);
  int assigned = 0;
  for (const Assignment& a : plan) {
    WorkerState& w = *workers_.Find(a.worker_id);
    BatchState batch{RandomId("batch-"), a.worker_id, a.key, {}, {}, now, now};
    for (const PendingItem& p : a.items) batch.items.push_back({p.job_id, p.index});
    if (auto s = store_->Lease(batch.id, w.id, batch.items, now + options_.lease_ms, now); !s.ok()) {
      // The windows disagree with the store: read them again from it.
      spdlog::error("cannot lease batch: {}", std::string(s.message()));
      for (const ItemKey& k : batch.items) {
        if (const JobRecord* job = jobs_.Active(k.job_id)) jobs_.queues().Reset(*job);
      }
      continue;
    }
    ++assigned;
    for (const ItemKey& k : batch.items) jobs_.queues().Take(k.job_id, k.index);
    v1::CoordinatorMessage msg;
    auto* assignment = msg.mutable_assignment();
    assignment->set_batch_id(batch.id);
    assignment->set_model(a.key.model);
    assignment->set_lease_expires_unix_ms(now + options_.lease_ms);
    std::map<std::string, std::vector<int>> by_job;
    std::map<std::string, int> preview_every;  // by job
    auto items = store_->RunningItems(batch.id);
    if (items.ok()) batch.records = std::move(*items);
    // The items share their sampling parameters (one batch key): sent once.
    if (!batch.records.empty()) *assignment->mutable_sampling() = batch.records.front().sampling;
    for (ItemRecord& it : batch.records) {
      jobs_.FillReference(it.job_id, &it.image);  // kept in the record too: the sidecar names it
      auto* item = assignment->add_items();
      item->set_index(it.index);
      item->set_job_id(it.job_id);
      *item->mutable_params() = it.image;
      if (!by_job.count(it.job_id)) {
        if (auto job = jobs_.Get(it.job_id); job.ok()) {
          preview_every[it.job_id] = job->preview_every;
          if (job->postprocess) {
            batch.postprocessed_jobs.insert(it.job_id);
            v1::JobPostprocess* post = assignment->add_postprocess();
            post->set_job_id(it.job_id);
            *post->mutable_spec() = *job->postprocess;
          }
        }
      }
      by_job[it.job_id].push_back(it.index);
      item->set_preview_every(preview_every[it.job_id]);
    }
    for (const auto& [job_id, indices] : by_job) last_served_[job_id] = ++serve_counter_;
    workers_.Assigned(w, !batches_.HoldsAny(w.id), now);
    metrics_->ObserveBatch(static_cast<int>(batch.items.size()));
    batches_.Add(std::move(batch));
    Send(w, msg);
    for (const auto& [job_id, indices] : by_job) {
      v1::JobEvent event;
      auto* started = event.mutable_started();
      for (int i : indices) started->add_indices(i);
      started->set_worker_id(w.id);
      jobs_.Emit(job_id, std::move(event));
    }
  }
  return assigned > 0;
}

// ------------------------------------------------------------------ releasing

namespace {

bool ServesModel(const WorkerState& w, const std::string& model) {
  const auto& models = w.registration.models();
  return std::find(models.begin(), models.end(), model) != models.end();
}

}  // namespace

// A worker that returns invalid results is at fault, not the items: they go to another
// worker first, and use up their attempts only where no other worker serves them.
bool Dispatcher::NoteInvalidResults(const BatchState& b) {
  for (const ItemKey& k : b.items) {
    InvalidOn& on = invalid_on_[{k.job_id, k.index}];
    on.model = b.key.model;
    on.workers.insert(b.worker_id);
  }
  for (const auto& [id, w] : workers_.all()) {
    if (!w.channel || !ServesModel(w, b.key.model)) continue;
    const bool untried = std::none_of(b.items.begin(), b.items.end(), [&, &id = id](const ItemKey& k) {
      return invalid_on_[{k.job_id, k.index}].workers.count(id) > 0;
    });
    if (untried) return true;
  }
  return false;
}

std::map<std::string, std::set<std::pair<std::string, int>>> Dispatcher::ItemsToAvoid() {
  std::map<std::string, std::set<std::pair<std::string, int>>> avoid;
  for (const auto& [item, on] : invalid_on_) {
    bool other = false;
    for (const auto& [id, w] : workers_.all()) {
      other = other || (w.channel && !on.workers.count(id) && ServesModel(w, on.model));
    }
    if (!other) continue;  // none left to try: whoever serves the model may take it again
    for (const std::string& id : on.workers) avoid[id].insert(item);
  }
  return avoid;
}

void Dispatcher::ReleaseBatch(const std::string& batch_id, v1::FailureReason reason, const std::string& message,
                              const std::map<std::pair<std::string, int>, std::string>& item_messages) {
  const ReleaseRule rule = BatchLedger::RuleFor(reason, options_.max_attempts, options_.storage_attempts);
  int max_attempts = rule.max_attempts;
  if (reason == v1::FAILURE_INVALID_RESULT) {
    const BatchState* b = batches_.Find(batch_id);
    if (b && NoteInvalidResults(*b)) max_attempts = std::numeric_limits<int>::max();
  }
  auto released =
      store_->ReleaseBatch(batch_id, rule.items_fault ? reason : 0, message, max_attempts, item_messages);
  std::set<std::string> jobs;
  if (!released.ok()) {
    spdlog::error("batch {}: cannot release: {}", batch_id, std::string(released.status().message()));
  } else {
    for (const ItemRecord& it : *released) {
      jobs.insert(it.job_id);
      if (it.state == ItemState::kQueued) {
        jobs_.queues().Requeue(it);
      } else {
        invalid_on_.erase({it.job_id, it.index});
        jobs_.ItemFailed(it);
      }
      if (reason == v1::FAILURE_CANCELLED) continue;
      metrics_->AddFailure(ReasonName(reason));
      v1::JobEvent event;
      auto* failed = event.mutable_item_failed();
      failed->set_index(it.index);
      failed->set_reason(reason);
      failed->set_message(it.failure_message.empty() ? message : it.failure_message);
      failed->set_will_retry(it.state == ItemState::kQueued);
      jobs_.Emit(it.job_id, std::move(event));
    }
  }
  batches_.Remove(batch_id);
  jobs_.FinishIfComplete(jobs);
  FailOrphans();  // after: a job it finishes is finished once
}

void Dispatcher::FailOrphans() {
  for (const ItemRecord& item : jobs_.FailOrphans()) {
    metrics_->AddFailure(ReasonName(static_cast<v1::FailureReason>(item.failure)));
  }
}

// Every batch the worker holds (rendering, queued ahead or being encoded) returns to the
// queue; none of it counts against the items' attempts.
void Dispatcher::ReleaseWorkerBatches(const WorkerState& w, const std::string& why) {
  for (const std::string& batch_id : batches_.BatchesOf(w.id)) ReleaseBatch(batch_id, v1::FAILURE_WORKER_LOST, why);
}

void Dispatcher::DropWorker(WorkerState& w, const std::string& why) {
  spdlog::warn("worker {} lost: {}", w.id, why);
  ReleaseWorkerBatches(w, absl::StrCat("worker ", w.id, " lost: ", why));
  if (auto channel = workers_.Detach(w)) outbox_->Post([channel, why] { channel->Close(why); });
}

void Dispatcher::OnDisconnect(WorkerState& w) {
  const size_t held = batches_.BatchesOf(w.id).size();
  if (held > 0) {
    spdlog::warn("worker {} disconnected with {} batches in flight", w.id, held);
    ReleaseWorkerBatches(w, absl::StrCat("worker ", w.id, " disconnected"));
  } else {
    spdlog::info("worker {} disconnected", w.id);
  }
  Schedule();
}

// A worker id made up once (or a default id of a process long gone) would otherwise stay in
// the registry, /metrics and the workers table for good. Rows of workers this process never
// knew (before a restart) go once as old.
void Dispatcher::ForgetWorkers(int64_t now) {
  const int64_t retention = options_.worker_retention_ms;
  if (now < next_worker_sweep_ms_) return;
  next_worker_sweep_ms_ = now + std::min<int64_t>(retention / 4, 60000);
  const std::vector<std::string> forgotten = workers_.Forget(now, retention);
  if (!forgotten.empty()) {
    spdlog::info("forgot {} workers disconnected for more than {} s", forgotten.size(), retention / 1000);
  }
  auto stored = store_->ListWorkers();
  if (!stored.ok()) return;
  std::vector<std::string> gone;
  for (const WorkerRecord& r : *stored) {
    if (!workers_.Find(r.id) && now - r.last_seen_ms > retention) gone.push_back(r.id);
  }
  if (auto s = store_->DeleteWorkers(gone); !s.ok()) {
    spdlog::warn("cannot forget {} workers in the store: {}", gone.size(), std::string(s.message()));
  }
}

void Dispatcher::Expire(int64_t now) {
  for (WorkerState* w : workers_.Silent(now)) {
    DropWorker(*w, absl::StrCat("silent for ", (now - w->last_seen_ms) / 1000, " s"));
  }
  // The ledger decides when a held batch's lease ends (one lease without progress on it);
  // a worker that stopped making progress (its engine hangs) loses everything it holds.
  for (const std::string& batch_id : batches_.Overdue(now, options_.lease_ms)) {
    const BatchState* b = batches_.Find(batch_id);
    if (!b) continue;  // released with its worker's other batches
    WorkerState* w = workers_.Find(b->worker_id);
    if (w && w->channel) {
      DropWorker(*w, absl::StrCat("no progress on batch ", batch_id, " for ", (now - b->renewed_ms) / 1000, " s"));
    } else {
      ReleaseBatch(batch_id, v1::FAILURE_WORKER_LOST, "lease expired");
    }
  }
  // Stored leases the ledger does not know (left by a failed release) end here.
  if (auto expired = store_->ExpiredBatches(now); expired.ok()) {
    for (const std::string& batch_id : *expired) {
      if (!batches_.Find(batch_id)) ReleaseBatch(batch_id, v1::FAILURE_WORKER_LOST, "lease expired");
    }
  }
  ForgetWorkers(now);
  const int failed = jobs_.CheckUnserved(SteadyMs());
  for (int i = 0; i < failed; ++i) metrics_->AddFailure(ReasonName(v1::FAILURE_MODEL_UNAVAILABLE));
  Schedule();
}

// ------------------------------------------------------------------ worker events

// What workers report: messages on their streams and the
// results that come back from the result pipeline.

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
      jobs_.ItemDone(wr.item.job_id, wr.item.index, wr.staged.files.image_path);
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
  FailOrphans();  // a result that could not be kept as its dependants' reference
  Schedule();
}

}  // namespace spriteforge::coordinator
