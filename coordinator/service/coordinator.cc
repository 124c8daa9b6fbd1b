#include "coordinator/service/coordinator.h"

#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "coordinator/service/convert.h"
#include "coordinator/service/results.h"
#include "coordinator/service/submit_check.h"
#include "coordinator/service/worker_check.h"
#include "spdlog/spdlog.h"

namespace spriteforge::coordinator {
namespace {

std::string RandomId(const char* prefix) {
  static std::mutex mu;
  static std::mt19937_64 rng(std::random_device{}());
  std::lock_guard<std::mutex> lock(mu);
  char buf[17];
  snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return absl::StrCat(prefix, std::string(buf, 12));
}

// An uploaded file as a job names it: its hash is its identity, so it is described from
// the blob without hashing again (a LoRA may be gigabytes).
absl::StatusOr<ManifestFile> DescribeBlob(const std::string& path, const std::string& sha256, ManifestFileKind kind,
                                          const UploadLimits& limits) {
  if (kind == ManifestFileKind::kImage) {
    auto file = DescribeManifestFile(path, kind, limits);
    if (!file.ok()) {
      // The coordinator's own path means nothing to the client.
      std::string message(file.status().message());
      if (message.rfind(path + ": ", 0) == 0) message = message.substr(path.size() + 2);
      return absl::InvalidArgumentError(absl::StrCat("the uploaded file: ", message));
    }
    return file;
  }
  std::error_code ec;
  ManifestFile file;
  file.sha256 = sha256;
  file.size = std::filesystem::file_size(path, ec);
  if (ec) return absl::NotFoundError(absl::StrCat("uploaded file ", sha256, " cannot be read"));
  if (file.size > limits.MaxBytes(kind)) {
    return absl::InvalidArgumentError(absl::StrCat("the ", KindName(kind), " is ", file.size,
                                                   " bytes; the limit is ", limits.MaxBytes(kind)));
  }
  return file;
}

const char* ReasonName(v1::FailureReason r) {
  switch (r) {
    case v1::FAILURE_OUT_OF_MEMORY: return "out_of_memory";
    case v1::FAILURE_INVALID_REQUEST: return "invalid_request";
    case v1::FAILURE_MODEL_UNAVAILABLE: return "model_unavailable";
    case v1::FAILURE_CANCELLED: return "cancelled";
    case v1::FAILURE_WORKER_LOST: return "worker_lost";
    case v1::FAILURE_STORAGE: return "storage";
    case v1::FAILURE_INVALID_RESULT: return "invalid_result";
    default: return "internal";
  }
}

bool Finished(JobState s) { return s == JobState::kDone || s == JobState::kFailed || s == JobState::kCancelled; }

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Coordinator::Coordinator(std::unique_ptr<Store> store, std::unique_ptr<BlobStore> blobs, CoordinatorOptions options)
    : store_(std::move(store)),
      blobs_(std::move(blobs)),
      options_(std::move(options)),
      quarantine_(options_.invalid_result_strikes, options_.quarantine_ms),
      last_tick_ms_(SteadyMs()),
      queues_([this](const std::string& job_id, int after, int limit) {
                return store_->QueuedItems(job_id, after, limit);
              },
              [this](const ItemRecord& item) { return KeyOfLocked(item); }),
      outbox_thread_([this] { RunOutbox(); }),
      results_(std::make_unique<ResultPipeline>(options_.output_dir, options_.result_threads,
                                                options_.max_waiting_result_bytes,
                                                [this](std::vector<StagedResult>& group) { CommitResults(group); })) {}

Coordinator::~Coordinator() {
  results_.reset();  // records what it holds while the outbox still runs
  {
    std::lock_guard<std::mutex> lock(outbox_mu_);
    stopping_ = true;
  }
  outbox_cv_.notify_all();
  outbox_thread_.join();
}

void Coordinator::Post(std::function<void()> action) {
  {
    std::lock_guard<std::mutex> lock(outbox_mu_);
    outbox_.push_back(std::move(action));
  }
  outbox_cv_.notify_one();
}

void Coordinator::RunOutbox() {
  std::unique_lock<std::mutex> lock(outbox_mu_);
  while (true) {
    outbox_cv_.wait(lock, [this] { return stopping_ || !outbox_.empty(); });
    if (outbox_.empty()) return;  // stopping and drained
    auto action = std::move(outbox_.front());
    outbox_.pop_front();
    lock.unlock();
    action();
    lock.lock();
  }
}

void Coordinator::SendLocked(WorkerState& worker, const v1::CoordinatorMessage& message) {
  if (!worker.channel) return;
  Post([channel = worker.channel, message] { channel->Send(message); });
}

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Create(std::unique_ptr<Store> store,
                                                                 CoordinatorOptions options) {
  auto requeued = store->Recover();
  if (!requeued.ok()) return requeued.status();
  if (*requeued > 0) spdlog::info("recovered: {} running items returned to the queue", *requeued);
  std::error_code ec;
  std::filesystem::create_directories(options.output_dir, ec);
  if (ec) return absl::FailedPreconditionError(absl::StrCat("cannot create ", options.output_dir, ": ", ec.message()));
  auto unfinished = store->UnfinishedJobs();
  if (!unfinished.ok()) return unfinished.status();
  int removed = 0;
  for (const JobRecord& job : *unfinished) removed += RemoveTemporaryFiles(options.output_dir, job.id);
  if (removed > 0) spdlog::info("removed {} temporary files of result writes the last process did not finish", removed);
  if (options.blob_dir.empty()) {
    options.blob_dir = (std::filesystem::absolute(options.output_dir).lexically_normal().parent_path() / "blobs").string();
  }
  auto blobs = BlobStore::Open(options.blob_dir, options.upload_limits);
  if (!blobs.ok()) return blobs.status();
  std::unique_ptr<Coordinator> core(new Coordinator(std::move(store), std::move(*blobs), std::move(options)));
  // Every unfinished job is in the cache, so the checks that walk it see them all.
  for (JobRecord& job : *unfinished) {
    core->queues_.Add(job);
    core->jobs_[job.id] = std::move(job);
  }
  return core;
}

int64_t Coordinator::NowMs() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch()).count();
}

// ------------------------------------------------------------------ jobs

absl::StatusOr<JobRecord> Coordinator::JobLocked(const std::string& job_id) {
  if (auto it = jobs_.find(job_id); it != jobs_.end()) return it->second;
  auto job = store_->GetJob(job_id);
  if (job.ok() && !Finished(job->state)) jobs_[job_id] = *job;
  return job;
}

v1::Job Coordinator::JobSnapshotLocked(const JobRecord& cached) {
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
  v1::Job out;
  out.set_id(job.id);
  out.set_name(job.name);
  out.set_model(job.model);
  out.set_priority(job.priority);
  out.set_state(static_cast<v1::JobState>(job.state));
  out.set_created_unix_ms(job.created_ms);
  out.set_finished_unix_ms(job.finished_ms);
  out.set_output_dir(JobDir(options_.output_dir, job.id));
  out.set_idempotency_key(job.idempotency_key);
  if (!Finished(job.state) && !ServedLocked(job.model)) {
    out.set_waiting_reason(absl::StrCat("no connected worker serves model ", job.model));
    if (options_.unserved_model_timeout_ms > 0) {
      absl::StrAppend(out.mutable_waiting_reason(), " (its queued items fail after ",
                      options_.unserved_model_timeout_ms / 1000.0, " s without one)");
    }
  }
  out.set_owner(job.owner);
  out.set_preview_every(job.preview_every);
  if (counts.ok()) {
    *out.mutable_counts() = ToProto(*counts);
    const int64_t end = job.finished_ms ? job.finished_ms : NowMs();
    const double seconds = job.started_ms ? (end - job.started_ms) / 1000.0 : 0;
    if (seconds > 0 && counts->done > 0) {
      out.set_images_per_second(counts->done / seconds);
      out.set_eta_seconds((counts->queued + counts->running) / out.images_per_second());
    }
  }
  return out;
}

void Coordinator::EmitLocked(const std::string& job_id, v1::JobEvent event) {
  bool any = false;
  for (const auto& [handle, w] : watchers_) any = any || w.job_id == job_id;
  if (!any) return;
  event.set_unix_ms(NowMs());
  event.set_job_id(job_id);
  if (auto job = JobLocked(job_id); job.ok()) *event.mutable_job() = JobSnapshotLocked(*job);
  for (const auto& [handle, w] : watchers_) {
    if (w.job_id == job_id) Post([sink = w.sink, event] { sink(event); });
  }
}

FileResolver Coordinator::UploadedFiles(const v1::SubmitJobRequest& request) {
  // One description per path and kind, however many items name it.
  auto seen = std::make_shared<std::map<std::pair<std::string, int>, ManifestFile>>();
  return [this, &request, seen](const std::string& path, ManifestFileKind kind) -> absl::StatusOr<ManifestFile> {
    if (auto it = seen->find({path, static_cast<int>(kind)}); it != seen->end()) return it->second;
    auto sha = request.files().find(path);
    if (sha == request.files().end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, " was not uploaded with the job (the spriteforge client uploads the files a manifest names)"));
    }
    auto blob = blobs_->Path(sha->second);
    if (!blob.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": ", blob.status().message(), " (upload it again)"));
    }
    auto file = DescribeBlob(*blob, sha->second, kind, blobs_->limits());
    if (!file.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", file.status().message()));
    (*seen)[{path, static_cast<int>(kind)}] = *file;
    return file;
  };
}

BatchKey Coordinator::KeyOfLocked(const ItemRecord& item) {
  auto job = jobs_.find(item.job_id);
  BatchKey key = KeyOf(job == jobs_.end() ? std::string() : job->second.model, item.sampling, item.image);
  for (const v1::LoraRef& lora : item.sampling.loras()) {
    if (lora.sha256().empty()) continue;
    auto size = blob_sizes_.find(lora.sha256());
    if (size == blob_sizes_.end()) {
      auto bytes = blobs_->Size(lora.sha256());
      size = blob_sizes_.emplace(lora.sha256(), bytes.ok() ? *bytes : 0).first;
    }
    key.uploaded_lora_bytes += size->second;
  }
  return key;
}

void Coordinator::CountBlobFetch(const std::string& sha256, uint64_t bytes) {
  metrics_.AddBlobFetch(bytes);
  spdlog::info("sent uploaded file {} ({} bytes) to a worker", sha256, bytes);
}

absl::StatusOr<v1::SubmitJobResponse> Coordinator::Submit(const v1::SubmitJobRequest& request,
                                                          const std::string& owner, const ClientLimits& limits) {
  const std::string file = request.manifest_name().empty() ? "manifest" : request.manifest_name();
  std::mt19937_64 rng(std::random_device{}());
  auto manifest = ParseManifestEntries(request.manifest(), file, options_.limits, UploadedFiles(request));
  if (!manifest.ok()) return manifest.status();
  if (auto s = CheckSubmission(request, *manifest, file); !s.ok()) return s;
  if (request.preview_every() < 0 || request.preview_every() > options_.limits.max_steps) {
    return absl::InvalidArgumentError(absl::StrCat("preview_every: must be 0 (the manifest's) to ",
                                                   options_.limits.max_steps, " steps, got ", request.preview_every()));
  }
  if (!request.model_override().empty()) manifest->model = request.model_override();
  JobRecord job;
  job.id = RandomId("job-");
  job.name = manifest->name;
  job.model = manifest->model;
  job.priority = manifest->priority;
  job.created_ms = NowMs();
  job.idempotency_key = request.idempotency_key();
  job.postprocess = manifest->postprocess;
  job.preview_every = request.preview_every() > 0 ? request.preview_every() : manifest->preview_every;
  job.owner = owner;
  bool deduplicated = false;
  absl::StatusOr<JobRecord> stored;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto s = CheckQuota(*store_, owner, limits, manifest->image_count); !s.ok()) return s;
    stored = store_->BeginJob(job, &deduplicated);
    if (!stored.ok()) return stored.status();
    if (deduplicated && stored->owner != owner) {
      return absl::AlreadyExistsError(absl::StrCat("idempotency key '", job.idempotency_key, "' is another owner's"));
    }
    if (deduplicated) {
      v1::SubmitJobResponse response;
      response.set_deduplicated(true);
      *response.mutable_job() = JobSnapshotLocked(*stored);
      return response;
    }
  }
  // Images are made and stored a chunk at a time, the lock released between chunks: memory
  // stays flat whatever the job's size, and workers are served while a large job loads.
  constexpr size_t kChunk = 10000;
  std::vector<ItemRecord> chunk;
  chunk.reserve(std::min<int64_t>(kChunk, manifest->image_count));
  auto flush = [&]() -> absl::Status {
    std::lock_guard<std::mutex> lock(mu_);
    absl::Status s = store_->AddItems(stored->id, chunk);
    chunk.clear();
    return s;
  };
  absl::Status loaded = absl::OkStatus();
  for (const ManifestEntry& entry : manifest->entries) {
    for (int k = 0; k < entry.count && loaded.ok(); ++k) {
      const ManifestImage image = ExpandImage(entry, k, [&] { return rng() >> 1; });
      ItemRecord it;
      it.index = image.index;
      it.image = std::move(image.image);
      it.sampling = std::move(image.sampling);
      it.random_seed = image.random_seed;
      chunk.push_back(std::move(it));
      if (chunk.size() == kChunk) loaded = flush();
    }
  }
  if (loaded.ok() && !chunk.empty()) loaded = flush();
  std::lock_guard<std::mutex> lock(mu_);
  if (loaded.ok()) loaded = store_->QueueJob(stored->id);
  if (!loaded.ok()) {
    store_->DropLoadingJob(stored->id).IgnoreError();
    return loaded;
  }
  stored->state = JobState::kQueued;
  v1::SubmitJobResponse response;
  *response.mutable_job() = JobSnapshotLocked(*stored);
  spdlog::info("job {} '{}': {} images of model {}", stored->id, stored->name, manifest->image_count, stored->model);
  jobs_[stored->id] = *stored;
  queues_.Add(*stored);
  v1::JobEvent event;
  event.mutable_queued()->set_items(static_cast<int>(manifest->image_count));
  EmitLocked(stored->id, std::move(event));
  Schedule();
  return response;
}

absl::StatusOr<v1::GetJobResponse> Coordinator::GetJob(const v1::GetJobRequest& request) {
  std::lock_guard<std::mutex> lock(mu_);
  auto job = JobLocked(request.job_id());
  if (!job.ok()) return job.status();
  v1::GetJobResponse response;
  *response.mutable_job() = JobSnapshotLocked(*job);
  if (request.include_items()) {
    auto items = store_->Items(job->id);
    if (!items.ok()) return items.status();
    for (const ItemRecord& it : *items) *response.add_items() = ToProto(it);
  }
  return response;
}

absl::StatusOr<std::string> Coordinator::JobOwner(const std::string& job_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto job = JobLocked(job_id);
  if (!job.ok()) return job.status();
  return job->owner;
}

absl::StatusOr<v1::ListJobsResponse> Coordinator::ListJobs(const v1::ListJobsRequest& request,
                                                           const std::optional<std::string>& owner) {
  std::lock_guard<std::mutex> lock(mu_);
  auto jobs = store_->ListJobs(request.limit() > 0 ? request.limit() : 100, owner);
  if (!jobs.ok()) return jobs.status();
  v1::ListJobsResponse response;
  for (const JobRecord& job : *jobs) *response.add_jobs() = JobSnapshotLocked(job);
  return response;
}

absl::StatusOr<v1::CancelJobResponse> Coordinator::Cancel(const v1::CancelJobRequest& request) {
  std::lock_guard<std::mutex> lock(mu_);
  auto batches = store_->CancelJob(request.job_id(), NowMs());
  if (!batches.ok()) return batches.status();
  // Running batches stop between steps; their other jobs' items return to the queue when
  // the worker reports the cancellation.
  for (const std::string& batch_id : *batches) {
    auto b = batches_.find(batch_id);
    if (b == batches_.end()) continue;
    auto w = workers_.find(b->second.worker_id);
    if (w != workers_.end()) {
      v1::CoordinatorMessage msg;
      msg.mutable_cancel()->set_batch_id(batch_id);
      SendLocked(w->second, msg);
    }
  }
  spdlog::info("job {} cancelled ({} running batches told to stop)", request.job_id(), batches->size());
  jobs_.erase(request.job_id());
  queues_.Remove(request.job_id());
  FinishJobsLocked({request.job_id()});
  auto job = store_->GetJob(request.job_id());
  if (!job.ok()) return job.status();
  v1::CancelJobResponse response;
  *response.mutable_job() = JobSnapshotLocked(*job);
  return response;
}

void Coordinator::FinishJobsLocked(const std::set<std::string>& job_ids) {
  for (const std::string& id : job_ids) {
    auto job = store_->FinishJobIfComplete(id, NowMs());
    if (!job.ok()) {
      spdlog::error("job {}: {}", id, std::string(job.status().message()));
      continue;
    }
    if (!Finished(job->state)) {
      jobs_[id] = *job;
      continue;
    }
    jobs_.erase(id);
    queues_.Remove(id);
    auto counts = store_->Counts(id);
    auto items = store_->Items(id);
    if (counts.ok() && items.ok()) {
      if (auto s = WriteJobSummary(options_.output_dir, *job, *counts, *items); !s.ok()) {
        spdlog::error("job {}: job.json: {}", id, std::string(s.message()));
      }
    }
    spdlog::info("job {} finished: {}", id, JobStateName(job->state));
    v1::JobEvent event;
    event.mutable_job_done()->set_state(static_cast<v1::JobState>(job->state));
    EmitLocked(id, std::move(event));
  }
}

absl::StatusOr<int64_t> Coordinator::Watch(const std::string& job_id, EventSink sink) {
  std::lock_guard<std::mutex> lock(mu_);
  auto job = JobLocked(job_id);
  if (!job.ok()) return job.status();
  const int64_t handle = next_watch_++;
  v1::JobEvent snapshot;
  snapshot.set_unix_ms(NowMs());
  snapshot.set_job_id(job_id);
  *snapshot.mutable_job() = JobSnapshotLocked(*job);
  snapshot.mutable_queued()->set_items(snapshot.job().counts().total());
  Post([sink, snapshot] { sink(snapshot); });
  if (Finished(job->state)) {
    snapshot.mutable_job_done()->set_state(static_cast<v1::JobState>(job->state));
    Post([sink, snapshot] { sink(snapshot); });
  }
  watchers_[handle] = Watcher{job_id, std::move(sink)};
  return handle;
}

void Coordinator::Unwatch(int64_t handle) {
  std::lock_guard<std::mutex> lock(mu_);
  watchers_.erase(handle);
}

absl::StatusOr<std::vector<std::string>> Coordinator::ResultFiles(const std::string& job_id, bool include_renders) {
  std::lock_guard<std::mutex> lock(mu_);
  auto items = store_->Items(job_id);
  if (!items.ok()) return items.status();
  if (items->empty()) {
    if (auto job = store_->GetJob(job_id); !job.ok()) return job.status();
  }
  std::vector<std::string> files;
  for (const ItemRecord& it : *items) {
    if (it.state != ItemState::kDone) continue;
    if (it.sprite_path.empty() || include_renders) files.push_back(it.image_path);
    if (!it.sprite_path.empty()) files.push_back(it.sprite_path);
    const std::string png = it.image_path;
    files.push_back(png.substr(0, png.size() - 4) + ".json");
  }
  const std::string summary = JobDir(options_.output_dir, job_id) + "/job.json";
  if (std::filesystem::exists(summary)) files.push_back(summary);
  return files;
}

// ------------------------------------------------------------------ workers

Coordinator::WorkerState* Coordinator::WorkerOf(WorkerChannel* channel) {
  auto it = by_channel_.find(channel);
  if (it == by_channel_.end()) return nullptr;
  auto w = workers_.find(it->second);
  return w == workers_.end() ? nullptr : &w->second;
}

absl::Status Coordinator::Register(std::shared_ptr<WorkerChannel> channel, const v1::Register& reg) {
  if (auto s = CheckRegister(reg); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  const std::string id = reg.worker_id().empty() ? RandomId("worker-") : reg.worker_id();
  if (auto s = quarantine_.Admit(id, NowMs()); !s.ok()) return s;
  // A connected worker keeps its id: a second stream claiming it would take its batches.
  if (auto it = workers_.find(id); it != workers_.end() && it->second.channel && it->second.channel != channel) {
    return absl::AlreadyExistsError(absl::StrCat("worker ", id, " is already connected"));
  }
  WorkerState& w = workers_[id];
  w.id = id;
  if (w.channel) by_channel_.erase(w.channel.get());
  w.channel = channel;
  by_channel_[channel.get()] = id;
  w.registration = reg;
  w.registration.set_worker_id(id);
  w.memory = reg.memory();
  w.last_seen_ms = NowMs();
  w.last_progress_ms = w.last_seen_ms;
  w.prefetch = std::clamp(reg.prefetch(), 0, options_.max_prefetch);
  // The memory model starts from the worker's own weights and the SDXL per-image prior,
  // then learns from the calibrations it measured and every batch it reports.
  const uint64_t fixed = std::max<uint64_t>(reg.memory().weights_bytes() * 23 / 20, 1);
  w.model = std::make_unique<MemoryModel>(
      MemoryPrior{reg.memory().weights_bytes() ? fixed : kSdxlFp16Prior.fixed_bytes,
                  kSdxlFp16Prior.per_image_bytes_at_1mp});
  for (const v1::Calibration& c : reg.calibrations()) {
    if (c.peak_bytes() > 0) w.model->Observe(c.batch(), c.width(), c.height(), c.peak_bytes());
  }
  nlohmann::json info = {{"device", reg.device_name()},
                         {"compute_capability", reg.compute_capability()},
                         {"unified_memory", reg.unified_memory()},
                         {"total_bytes", reg.memory().total_bytes()},
                         {"budget_bytes", reg.memory().budget_bytes()},
                         {"models", std::vector<std::string>(reg.models().begin(), reg.models().end())},
                         {"max_batch", reg.max_batch()}};
  if (auto s = store_->UpsertWorker({id, info.dump(), w.last_seen_ms, 0}); !s.ok()) return s;
  spdlog::info("worker {} registered: {} ({}), budget {:.2f} GB, models [{}], max batch {}", id, reg.device_name(),
               reg.compute_capability(), reg.memory().budget_bytes() / 1e9,
               absl::StrJoin(reg.models(), ", "), reg.max_batch());
  v1::CoordinatorMessage msg;
  msg.mutable_registered()->set_worker_id(id);
  msg.mutable_registered()->set_heartbeat_interval_ms(options_.heartbeat_ms);
  SendLocked(w, msg);
  Schedule();
  return absl::OkStatus();
}

int Coordinator::UnrenderedBatches(const WorkerState& w) {
  int n = 0;
  for (const std::string& id : w.batch_ids) n += w.rendered.count(id) ? 0 : 1;
  return n;
}

// Every batch the worker holds (rendering, queued ahead or being encoded) returns to the
// queue; none of it counts against the items' attempts.
void Coordinator::ReleaseWorkerBatchesLocked(WorkerState& w, const std::string& why) {
  const std::vector<std::string> held = w.batch_ids;
  for (const std::string& batch_id : held) ReleaseBatchLocked(batch_id, v1::FAILURE_WORKER_LOST, why);
  w.batch_ids.clear();
  w.rendered.clear();
}

void Coordinator::DropWorkerLocked(WorkerState& w, const std::string& why) {
  spdlog::warn("worker {} lost: {}", w.id, why);
  ReleaseWorkerBatchesLocked(w, absl::StrCat("worker ", w.id, " lost: ", why));
  if (w.channel) {
    by_channel_.erase(w.channel.get());
    Post([channel = w.channel, why] { channel->Close(why); });
  }
  w.channel = nullptr;
}

void Coordinator::OnDisconnect(WorkerChannel* channel) {
  std::lock_guard<std::mutex> lock(mu_);
  WorkerState* w = WorkerOf(channel);
  if (!w) return;
  by_channel_.erase(channel);
  w->channel = nullptr;  // the stream is already gone; nothing to close
  if (!w->batch_ids.empty()) {
    spdlog::warn("worker {} disconnected with {} batches in flight", w->id, w->batch_ids.size());
    ReleaseWorkerBatchesLocked(*w, absl::StrCat("worker ", w->id, " disconnected"));
  } else {
    spdlog::info("worker {} disconnected", w->id);
  }
  Schedule();
}

void Coordinator::ReleaseBatchLocked(const std::string& batch_id, v1::FailureReason reason,
                                     const std::string& message,
                                     const std::map<std::pair<std::string, int>, std::string>& item_messages) {
  // Worker loss and out of memory are not the items' fault: they go back to the queue
  // without counting towards their attempts' limit. Results that cannot be stored (a full
  // disk) have a limit of their own, long enough for an operator to free space.
  const bool items_fault = reason != v1::FAILURE_WORKER_LOST && reason != v1::FAILURE_OUT_OF_MEMORY &&
                           reason != v1::FAILURE_CANCELLED;
  const int max_attempts = reason == v1::FAILURE_INVALID_REQUEST ? 1
                           : reason == v1::FAILURE_STORAGE     ? options_.storage_attempts
                                                               : options_.max_attempts;
  auto released = store_->ReleaseBatch(batch_id, items_fault ? reason : 0, message, max_attempts, item_messages);
  std::set<std::string> jobs;
  if (!released.ok()) {
    spdlog::error("batch {}: cannot release: {}", batch_id, std::string(released.status().message()));
  } else {
    for (const ItemRecord& it : *released) {
      jobs.insert(it.job_id);
      if (it.state == ItemState::kQueued) queues_.Requeue(it);
      if (reason == v1::FAILURE_CANCELLED) continue;
      metrics_.AddFailure(ReasonName(reason));
      v1::JobEvent event;
      auto* failed = event.mutable_item_failed();
      failed->set_index(it.index);
      failed->set_reason(reason);
      failed->set_message(it.failure_message.empty() ? message : it.failure_message);
      failed->set_will_retry(it.state == ItemState::kQueued);
      EmitLocked(it.job_id, std::move(event));
    }
  }
  if (auto b = batches_.find(batch_id); b != batches_.end()) {
    if (auto w = workers_.find(b->second.worker_id); w != workers_.end()) {
      auto& held = w->second.batch_ids;
      held.erase(std::remove(held.begin(), held.end(), batch_id), held.end());
      w->second.rendered.erase(batch_id);
    }
    batches_.erase(b);
  }
  FinishJobsLocked(jobs);
}

void Coordinator::OnMessage(WorkerChannel* channel, const v1::WorkerMessage& message) {
  std::unique_lock<std::mutex> lock(mu_);
  WorkerState* w = WorkerOf(channel);
  if (!w) return;  // dropped: whatever it says no longer counts
  if (auto s = CheckWorkerMessage(message); !s.ok()) {
    DropWorkerLocked(*w, absl::StrCat("invalid message: ", s.message()));
    return;
  }
  const int64_t now = NowMs();
  w->last_seen_ms = now;
  // Leases live while the worker makes progress. A heartbeat alone proves the process is
  // up, not that its engine moves: it renews only while steps or results keep coming, so
  // a worker whose engine hangs loses its batches after one lease.
  if (message.msg_case() != v1::WorkerMessage::kHeartbeat) w->last_progress_ms = now;
  // Extending leases is a write; once per tenth of a lease keeps them far from expiry.
  if ((w->batch_ids.empty() || now - w->last_progress_ms < options_.lease_ms) &&
      now - w->renewed_ms >= options_.lease_ms / 10) {
    store_->RenewLeases(w->id, now + options_.lease_ms).IgnoreError();
    w->renewed_ms = now;
  }
  switch (message.msg_case()) {
    case v1::WorkerMessage::kHeartbeat:
      w->memory = message.heartbeat().memory();
      break;
    case v1::WorkerMessage::kRendered:
      if (auto b = batches_.find(message.rendered().batch_id()); b != batches_.end() && b->second.worker_id == w->id) {
        w->rendered.insert(b->first);
      }
      break;
    case v1::WorkerMessage::kProgress:
      HandleProgress(*w, message.progress());
      break;
    case v1::WorkerMessage::kPreview:
      HandlePreview(*w, message.preview());
      break;
    case v1::WorkerMessage::kResult: {
      ResultWork work;
      if (!PrepareResultLocked(*w, message.result(), &work)) return;
      // Checks and files run without the lock, in the pipeline or (without threads) here.
      lock.unlock();
      results_->Submit(std::move(work));
      return;
    }
    case v1::WorkerMessage::kFailure:
      HandleFailure(*w, message.failure());
      break;
    default:
      break;
  }
  // Steps, previews and heartbeats change nothing the planner looks at.
  if (message.msg_case() != v1::WorkerMessage::kProgress && message.msg_case() != v1::WorkerMessage::kHeartbeat &&
      message.msg_case() != v1::WorkerMessage::kPreview) {
    Schedule();
  }
}

void Coordinator::HandleProgress(WorkerState& w, const v1::StepProgress& progress) {
  auto b = batches_.find(progress.batch_id());
  if (b == batches_.end() || b->second.worker_id != w.id) return;
  const int64_t now = NowMs();
  if (progress.step() > 1) metrics_.ObserveStepSeconds((now - b->second.last_step_ms) / 1000.0);
  b->second.last_step_ms = now;
  std::map<std::string, std::vector<int>> by_job;
  for (const ItemKey& k : b->second.items) by_job[k.job_id].push_back(k.index);
  for (const auto& [job_id, indices] : by_job) {
    v1::JobEvent event;
    auto* p = event.mutable_progress();
    for (int i : indices) p->add_indices(i);
    p->set_worker_id(w.id);
    p->set_step(progress.step());
    p->set_total_steps(progress.total_steps());
    EmitLocked(job_id, std::move(event));
  }
}

void Coordinator::HandlePreview(WorkerState& w, const v1::BatchPreview& preview) {
  auto b = batches_.find(preview.batch_id());
  if (b == batches_.end() || b->second.worker_id != w.id) return;
  for (const v1::PreviewImage& image : preview.images()) {
    // Only the batch's own items, at 1/8 of their size; anything else is not relayed.
    const ItemRecord* item = nullptr;
    for (const ItemRecord& r : b->second.records) {
      if (r.job_id == image.job_id() && r.index == image.index()) item = &r;
    }
    if (!item || image.width() * 8 != static_cast<int>(item->sampling.width()) ||
        image.height() * 8 != static_cast<int>(item->sampling.height())) {
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
    EmitLocked(image.job_id(), std::move(event));
  }
}

bool Coordinator::PrepareResultLocked(WorkerState& w, v1::BatchResultMsg result, ResultWork* work) {
  auto b = batches_.find(result.batch_id());
  if (b == batches_.end() || b->second.worker_id != w.id) return false;  // released meanwhile
  work->batch_id = result.batch_id();
  work->worker_id = w.id;
  work->batch_size = static_cast<int>(b->second.items.size());
  work->model = b->second.key.model;
  work->items = b->second.records;
  work->result = std::move(result);
  return true;
}

void Coordinator::CommitResults(std::vector<StagedResult>& group) {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now = NowMs();
  std::string storage_error;
  bool stored_any = false;
  for (const StagedResult& r : group) {
    if (!r.storage_error.empty()) storage_error = r.storage_error;
    stored_any = stored_any || !r.written.empty();
  }
  if (!storage_error.empty()) {
    storage_backoff_ms_ = std::min<int64_t>(30000, std::max<int64_t>(1000, storage_backoff_ms_ * 2));
    storage_pause_until_ms_ = now + storage_backoff_ms_;
    spdlog::error("results cannot be written ({}); dispatching paused for {} s", storage_error,
                  storage_backoff_ms_ / 1000);
  } else if (stored_any) {
    storage_backoff_ms_ = 0;
  }
  std::vector<Completion> completions;
  for (const StagedResult& r : group) {
    for (const StagedItem& wr : r.written) {
      completions.push_back({r.batch_id, {wr.item.job_id, wr.item.index}, wr.staged.files.image_path,
                             wr.staged.files.sprite_path});
    }
  }
  // One transaction for the whole group.
  auto accepted = store_->CompleteItems(completions, now);
  if (!accepted.ok()) spdlog::error("cannot record results: {}", std::string(accepted.status().message()));
  size_t next = 0;
  std::set<std::string> jobs;
  for (StagedResult& r : group) {
    int done = 0;
    for (const StagedItem& wr : r.written) {
      const bool ok = accepted.ok() && (*accepted)[next++];
      if (!ok) {
        // Cancelled or reassigned meanwhile: the files are not the item's result.
        RemoveItemFiles(wr.staged.files);
        continue;
      }
      ++done;
      jobs.insert(wr.item.job_id);
      v1::JobEvent event;
      auto* item_done = event.mutable_item_done();
      item_done->set_index(wr.item.index);
      item_done->set_seed(wr.item.image.seed());
      item_done->set_image_path(wr.staged.files.sprite_path.empty() ? wr.staged.files.image_path
                                                                     : wr.staged.files.sprite_path);
      item_done->set_worker_id(r.worker_id);
      EmitLocked(wr.item.job_id, std::move(event));
    }
    if (!accepted.ok() && r.storage_error.empty()) r.storage_error = std::string(accepted.status().message());
    metrics_.AddImages(done);
    if (done > 0) {
      metrics_.ObserveImageSeconds(r.total_ms / 1000.0 / done);
      store_->AddWorkerImages(r.worker_id, done, now).IgnoreError();
    }
    auto wit = workers_.find(r.worker_id);
    if (wit != workers_.end()) {
      WorkerState& worker = wit->second;
      worker.images_done += done;
      if (r.total_ms > 0 && done > 0) {
        const double rate = done / (r.total_ms / 1000.0);
        worker.images_per_second =
            worker.images_per_second > 0 ? 0.7 * worker.images_per_second + 0.3 * rate : rate;
      }
      auto b = batches_.find(r.batch_id);
      if (r.peak_bytes > 0 && b != batches_.end()) {
        worker.peak_bytes = std::max(worker.peak_bytes, r.peak_bytes);
        if (worker.model) worker.model->Observe(r.batch_size, b->second.key.width, b->second.key.height, r.peak_bytes);
      }
    }
    // Whatever the batch did not deliver goes back to the queue (or fails on storage errors).
    if (batches_.count(r.batch_id)) {
      if (!r.invalid_error.empty()) ReleaseBatchLocked(r.batch_id, v1::FAILURE_INVALID_RESULT, r.invalid_error);
      else if (!r.storage_error.empty()) ReleaseBatchLocked(r.batch_id, v1::FAILURE_STORAGE, r.storage_error, r.storage_errors);
      else ReleaseBatchLocked(r.batch_id, v1::FAILURE_INTERNAL, "the worker's result lacked this item");
    }
    if (r.invalid_error.empty()) {
      quarantine_.Clear(r.worker_id);
    } else if (quarantine_.Strike(r.worker_id, now) && wit != workers_.end()) {
      DropWorkerLocked(wit->second, absl::StrCat("quarantined for ", options_.quarantine_ms / 1000, " s after ",
                                                 options_.invalid_result_strikes, " batches of invalid results"));
    }
  }
  FinishJobsLocked(jobs);
  Schedule();
}

void Coordinator::HandleFailure(WorkerState& w, const v1::BatchFailure& failure) {
  auto b = batches_.find(failure.batch_id());
  if (b == batches_.end() || b->second.worker_id != w.id) return;
  const int size = static_cast<int>(b->second.items.size());
  const BatchKey key = b->second.key;
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
  ReleaseBatchLocked(failure.batch_id(), reason, failure.message());
}

// ------------------------------------------------------------------ scheduling

// Workers take batches while they hold fewer unrendered ones than 1 + prefetch, one per
// planning round, so the rounds interleave workers and jobs fairly. Rounds go on while they
// assign something: a round hands out at most the queue windows it sees.
void Coordinator::Schedule() {
  for (int round = 0; round < 4096; ++round) {
    if (!ScheduleRound()) return;
  }
}

bool Coordinator::ScheduleRound() {
  if (NowMs() < storage_pause_until_ms_) return false;
  std::vector<WorkerView> views;
  for (auto& [id, w] : workers_) {
    if (!w.channel || UnrenderedBatches(w) > w.prefetch) continue;
    WorkerView v;
    v.id = id;
    v.models.assign(w.registration.models().begin(), w.registration.models().end());
    v.budget_bytes = w.memory.budget_bytes() ? w.memory.budget_bytes() : w.registration.memory().budget_bytes();
    v.max_batch = w.registration.max_batch();
    v.idle = true;
    v.memory = w.model.get();
    for (const v1::LoraFile& lora : w.registration.lora_files()) v.lora_bytes[lora.name()] = lora.size_bytes();
    views.push_back(std::move(v));
  }
  if (views.empty()) return false;
  auto queued = queues_.Jobs();
  if (!queued.ok()) {
    spdlog::error("cannot read the queue: {}", std::string(queued.status().message()));
    return false;
  }
  if (queued->empty()) return false;
  const int64_t now = NowMs();
  const std::vector<Assignment> plan = PlanJobs(*queued, queues_.keys(), views, last_served_);
  int assigned = 0;
  for (const Assignment& a : plan) {
    WorkerState& w = workers_[a.worker_id];
    BatchState batch{RandomId("batch-"), a.worker_id, a.key, {}, {}, now, now};
    for (const PendingItem& p : a.items) batch.items.push_back({p.job_id, p.index});
    if (auto s = store_->Lease(batch.id, w.id, batch.items, now + options_.lease_ms, now); !s.ok()) {
      // The windows disagree with the store: read them again from it.
      spdlog::error("cannot lease batch: {}", std::string(s.message()));
      for (const ItemKey& k : batch.items) {
        if (auto job = jobs_.find(k.job_id); job != jobs_.end()) queues_.Reset(job->second);
      }
      continue;
    }
    ++assigned;
    for (const ItemKey& k : batch.items) queues_.Take(k.job_id, k.index);
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
    for (const ItemRecord& it : batch.records) {
      auto* item = assignment->add_items();
      item->set_index(it.index);
      item->set_job_id(it.job_id);
      *item->mutable_params() = it.image;
      if (!by_job.count(it.job_id)) {
        if (auto job = JobLocked(it.job_id); job.ok()) {
          preview_every[it.job_id] = job->preview_every;
          if (job->postprocess) {
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
    // A worker that held nothing starts its progress clock now: its first step follows.
    if (w.batch_ids.empty()) w.last_progress_ms = now;
    w.batch_ids.push_back(batch.id);
    metrics_.ObserveBatch(static_cast<int>(batch.items.size()));
    batches_[batch.id] = std::move(batch);
    SendLocked(w, msg);
    for (const auto& [job_id, indices] : by_job) {
      v1::JobEvent event;
      auto* started = event.mutable_started();
      for (int i : indices) started->add_indices(i);
      started->set_worker_id(w.id);
      EmitLocked(job_id, std::move(event));
    }
  }
  return assigned > 0;
}

void Coordinator::Tick() {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now = NowMs();
  for (auto& [id, w] : workers_) {
    if (w.channel && now - w.last_seen_ms > options_.lease_ms) {
      DropWorkerLocked(w, absl::StrCat("silent for ", (now - w.last_seen_ms) / 1000, " s"));
    }
  }
  if (auto expired = store_->ExpiredBatches(now); expired.ok()) {
    for (const std::string& batch_id : *expired) {
      // A connected worker whose lease ran out has stopped making progress (its engine
      // hangs): it loses everything it holds, not only this batch.
      auto b = batches_.find(batch_id);
      auto w = b == batches_.end() ? workers_.end() : workers_.find(b->second.worker_id);
      if (w != workers_.end() && w->second.channel) {
        DropWorkerLocked(w->second, absl::StrCat("no progress for ", (now - w->second.last_progress_ms) / 1000, " s"));
      } else {
        ReleaseBatchLocked(batch_id, v1::FAILURE_WORKER_LOST, "lease expired");
      }
    }
  }
  CheckUnservedJobsLocked();
  Schedule();
  last_tick_ms_ = SteadyMs();
}

absl::Status Coordinator::CheckAlive(int64_t max_tick_age_ms, int64_t lock_timeout_ms) {
  const int64_t age = SteadyMs() - last_tick_ms_;
  if (age > max_tick_age_ms) {
    return absl::UnavailableError(absl::StrCat("the service loop last ran ", age / 1000.0, " s ago"));
  }
  const int64_t deadline = SteadyMs() + lock_timeout_ms;
  while (!mu_.try_lock()) {
    if (SteadyMs() >= deadline) {
      return absl::UnavailableError(absl::StrCat("the coordinator stayed busy for ", lock_timeout_ms, " ms"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  mu_.unlock();
  return absl::OkStatus();
}

bool Coordinator::ServedLocked(const std::string& model) const {
  for (const auto& [id, w] : workers_) {
    if (!w.channel) continue;
    for (const std::string& m : w.registration.models()) {
      if (m == model) return true;
    }
  }
  return false;
}

void Coordinator::CheckUnservedJobsLocked() {
  const int64_t now = SteadyMs();
  for (auto it = unserved_since_.begin(); it != unserved_since_.end();) {
    it = jobs_.count(it->first) ? std::next(it) : unserved_since_.erase(it);
  }
  std::set<std::string> timed_out;
  for (const auto& [id, job] : jobs_) {
    if (ServedLocked(job.model)) {
      unserved_since_.erase(id);
      continue;
    }
    auto [since, first] = unserved_since_.emplace(id, now);
    if (first) {
      spdlog::warn("job {}: no connected worker serves model {}", id, job.model);
      v1::JobEvent event;
      event.mutable_waiting()->set_reason(absl::StrCat("no connected worker serves model ", job.model));
      EmitLocked(id, std::move(event));
    }
    if (options_.unserved_model_timeout_ms > 0 && now - since->second >= options_.unserved_model_timeout_ms) {
      timed_out.insert(id);
    }
  }
  for (const std::string& id : timed_out) {
    const std::string model = jobs_[id].model;
    const std::string message = absl::StrCat("no connected worker served model ", model, " for ",
                                             options_.unserved_model_timeout_ms / 1000.0, " s");
    auto failed = store_->FailQueuedItems(id, v1::FAILURE_MODEL_UNAVAILABLE, message);
    if (!failed.ok()) {
      spdlog::error("job {}: {}", id, std::string(failed.status().message()));
      continue;
    }
    spdlog::warn("job {}: {} queued items failed: {}", id, failed->size(), message);
    queues_.Reset(jobs_[id]);  // its window held items that are no longer queued
    // One snapshot for all the events: a large job's items fail together.
    v1::JobEvent event;
    event.set_unix_ms(NowMs());
    event.set_job_id(id);
    *event.mutable_job() = JobSnapshotLocked(jobs_[id]);
    for (const ItemRecord& item : *failed) {
      metrics_.AddFailure(ReasonName(v1::FAILURE_MODEL_UNAVAILABLE));
      auto* f = event.mutable_item_failed();
      f->set_index(item.index);
      f->set_reason(v1::FAILURE_MODEL_UNAVAILABLE);
      f->set_message(message);
      for (const auto& [handle, w] : watchers_) {
        if (w.job_id == id) Post([sink = w.sink, event] { sink(event); });
      }
    }
    unserved_since_.erase(id);
    FinishJobsLocked({id});
  }
}

// ------------------------------------------------------------------ views

v1::ListWorkersResponse Coordinator::ListWorkers() {
  std::lock_guard<std::mutex> lock(mu_);
  v1::ListWorkersResponse response;
  for (const auto& [id, w] : workers_) {
    v1::WorkerView* v = response.add_workers();
    const v1::Register& r = w.registration;
    v->set_id(id);
    v->set_device_name(r.device_name());
    v->set_compute_capability(r.compute_capability());
    v->set_unified_memory(r.unified_memory());
    v->set_total_bytes(w.memory.total_bytes());
    v->set_free_bytes(w.memory.free_bytes());
    v->set_budget_bytes(w.memory.budget_bytes());
    v->set_used_bytes(w.memory.total_bytes() > w.memory.free_bytes() ? w.memory.total_bytes() - w.memory.free_bytes()
                                                                     : 0);
    v->set_peak_bytes(w.peak_bytes);
    for (const auto& m : r.models()) v->add_models(m);
    v->set_max_batch(r.max_batch());
    v->set_connected(w.channel != nullptr);
    int running = 0;
    for (const std::string& batch_id : w.batch_ids) {
      if (auto b = batches_.find(batch_id); b != batches_.end()) running += static_cast<int>(b->second.items.size());
    }
    v->set_running_items(running);
    v->set_images_done(w.images_done);
    v->set_images_per_second(w.images_per_second);
    v->set_last_seen_unix_ms(w.last_seen_ms);
  }
  return response;
}

GaugeSnapshot Coordinator::GaugesLocked() {
  GaugeSnapshot g;
  if (auto totals = store_->Totals(); totals.ok()) {
    g.queue_depth = (*totals)["queued"];
    g.running_items = (*totals)["running"];
  }
  g.jobs_active = static_cast<int64_t>(jobs_.size());
  for (const auto& [id, w] : workers_) {
    g.workers.push_back({id, w.channel != nullptr, w.images_per_second, w.peak_bytes, w.memory.budget_bytes(),
                         w.memory.total_bytes() > w.memory.free_bytes() ? w.memory.total_bytes() - w.memory.free_bytes()
                                                                        : 0,
                         w.images_done});
  }
  return g;
}

std::string Coordinator::MetricsText() {
  std::lock_guard<std::mutex> lock(mu_);
  return metrics_.Render(GaugesLocked());
}

v1::GetStatsResponse Coordinator::Stats() {
  std::lock_guard<std::mutex> lock(mu_);
  const GaugeSnapshot g = GaugesLocked();
  v1::GetStatsResponse out;
  out.set_images_total(metrics_.images_total());
  out.set_failures_total(metrics_.failures_total());
  out.set_queue_depth(static_cast<int32_t>(g.queue_depth));
  out.set_running_items(static_cast<int32_t>(g.running_items));
  out.set_jobs_active(static_cast<int32_t>(g.jobs_active));
  for (const WorkerGauges& w : g.workers) {
    if (w.connected) {
      out.set_workers_connected(out.workers_connected() + 1);
      out.set_images_per_second(out.images_per_second() + w.images_per_second);
    }
    v1::WorkerStats* ws = out.add_workers();
    ws->set_id(w.id);
    ws->set_connected(w.connected);
    ws->set_images_per_second(w.images_per_second);
    ws->set_images_done(w.images_done);
    ws->set_memory_peak_bytes(w.peak_bytes);
    ws->set_memory_budget_bytes(w.budget_bytes);
    ws->set_memory_used_bytes(w.used_bytes);
  }
  return out;
}

}  // namespace spriteforge::coordinator
