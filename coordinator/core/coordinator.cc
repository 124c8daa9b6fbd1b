#include "coordinator/core/coordinator.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/comfyui/workflow.h"
#include "common/status_macros.h"
#include "coordinator/core/convert.h"
#include "coordinator/core/core_clock.h"
#include "coordinator/core/results.h"
#include "coordinator/core/submit_check.h"
#include "coordinator/core/worker_check.h"
#include "spdlog/spdlog.h"

namespace spriteforge::coordinator {
namespace {

// An uploaded file as a job names it: its hash is its identity, so it is described from
// the blob without hashing again (a LoRA may be gigabytes).
absl::StatusOr<ManifestFile> DescribeBlob(const std::string& path, const std::string& sha256, ManifestFileKind kind,
                                          const UploadLimits& limits) {
  if (kind == ManifestFileKind::kImage || kind == ManifestFileKind::kConfig) {
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

// The uploaded files an item needs: its LoRAs, its start image, its ControlNets, IP-Adapter
// and image encoder, and its control and reference images.
void AddBlobsNamedBy(const ItemRecord& item, std::set<std::string>* named) {
  auto add = [named](const std::string& sha256) {
    if (!sha256.empty()) named->insert(sha256);
  };
  for (const v1::LoraRef& lora : item.sampling.loras()) add(lora.sha256());
  add(item.image.init_image_sha256());
  for (const v1::ControlNetRef& net : item.sampling.controlnets()) {
    add(net.sha256());
    add(net.config_sha256());
  }
  const v1::IpAdapterRef& ip = item.sampling.ip_adapter();
  for (const std::string* sha : {&ip.sha256(), &ip.encoder_sha256(), &ip.encoder_config_sha256()}) add(*sha);
  for (const v1::ControlImage& control : item.image.controls()) {
    add(control.image_sha256());
    add(control.pose_sha256());
    add(control.canny().image_sha256());
  }
  for (const std::string& sha : item.image.reference_sha256()) add(sha);
}

// The uploaded files a stored job's items name, read a page at a time (once, at start).
absl::StatusOr<std::set<std::string>> BlobsNamedByJob(Store& store, const std::string& job_id) {
  constexpr int kPage = 1000;
  std::set<std::string> named;
  for (int after = -1;;) {
    ASSIGN_OR_RETURN(auto page, store.ItemsPage(job_id, after, kPage));
    for (const ItemRecord& item : page) AddBlobsNamedBy(item, &named);
    if (static_cast<int>(page.size()) < kPage) return named;
    after = page.back().index;
  }
}

// Cancels a cancelled job's queued items a chunk at a time until none is left; `chunk`
// cancels at most `limit` in one transaction and says how many it did.
absl::Status CancelQueuedItems(const std::function<absl::StatusOr<int>(int limit)>& chunk) {
  constexpr int kCancelChunk = 2000;
  for (int cancelled = kCancelChunk; cancelled == kCancelChunk;) {
    ASSIGN_OR_RETURN(cancelled, chunk(kCancelChunk));
  }
  return absl::OkStatus();
}

}  // namespace

Coordinator::Coordinator(std::unique_ptr<Store> store, std::unique_ptr<BlobStore> blobs, CoordinatorOptions options)
    : options_(std::move(options)),
      blobs_(std::move(blobs)),
      last_tick_ms_(SteadyMs()),
      core_(std::make_unique<Dispatcher>(std::move(store), blobs_.get(), &outbox_, &metrics_, options_)),
      results_(std::make_unique<ResultPipeline>(options_.output_dir, options_.result_threads,
                                                options_.max_waiting_result_bytes,
                                                [this](std::vector<StagedResult>& group) {
                                                  Lock()->CommitResults(group);
                                                },
                                                [this](const std::string& phase, double seconds) {
                                                  metrics_.ObserveResultStoreSeconds(phase, seconds);
                                                })) {}

// The pipeline records what it holds first, while the dispatcher and the outbox still run.
Coordinator::~Coordinator() { results_.reset(); }

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Create(std::unique_ptr<Store> store,
                                                                 CoordinatorOptions options) {
  ASSIGN_OR_RETURN(auto requeued, store->Recover());
  if (requeued > 0) spdlog::info("recovered: {} running items returned to the queue", requeued);
  std::error_code ec;
  std::filesystem::create_directories(options.output_dir, ec);
  if (ec) return absl::FailedPreconditionError(absl::StrCat("cannot create ", options.output_dir, ": ", ec.message()));
  ASSIGN_OR_RETURN(std::vector<JobRecord> unfinished, store->UnfinishedJobs());
  int removed = 0;
  for (const JobRecord& job : unfinished) removed += RemoveTemporaryFiles(options.output_dir, job.id);
  if (removed > 0) spdlog::info("removed {} temporary files of result writes the last process did not finish", removed);
  if (options.blob_dir.empty()) {
    options.blob_dir = (std::filesystem::absolute(options.output_dir).lexically_normal().parent_path() / "blobs").string();
  }
  ASSIGN_OR_RETURN(auto blobs, BlobStore::Open(options.blob_dir, options.upload_limits,
                                               BlobBudget{options.blob_max_bytes}));
  std::unique_ptr<Coordinator> core(new Coordinator(std::move(store), std::move(blobs), std::move(options)));
  // Every unfinished job is in the cache, so the checks that walk it see them all; a job
  // whose cancel the last process did not finish is finished instead, never queued again.
  {
    auto locked = core->Lock();
    for (JobRecord& job : unfinished) {
      if (job.state != JobState::kCancelled) {
        ASSIGN_OR_RETURN(core->named_by_job_[job.id], BlobsNamedByJob(locked->store(), job.id));
        locked->jobs().Add(std::move(job));
        continue;
      }
      RETURN_IF_ERROR(CancelQueuedItems([&](int limit) { return locked->store().CancelQueuedItems(job.id, limit); }));
      locked->jobs().FinishIfComplete({job.id});
    }
  }
  return core;
}

// ------------------------------------------------------------------ jobs

// A job names only files its owner uploaded: another owner's answers as a missing one does.
FileResolver Coordinator::UploadedFiles(const v1::SubmitJobRequest& request, const std::string& owner) {
  // One description per path and kind, however many items name it.
  auto seen = std::make_shared<std::map<std::pair<std::string, int>, ManifestFile>>();
  return [this, &request, owner, seen](const std::string& path, ManifestFileKind kind) -> absl::StatusOr<ManifestFile> {
    if (auto it = seen->find({path, static_cast<int>(kind)}); it != seen->end()) return it->second;
    auto sha = request.files().find(path);
    if (sha == request.files().end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, " was not uploaded with the job (the spriteforge client uploads the files a manifest names)"));
    }
    auto blob = blobs_->PathFor(sha->second, owner);
    if (blob.ok()) {
      if (auto touched = blobs_->Touch(sha->second); !touched.ok()) blob = touched;  // named now: collection waits
    }
    if (!blob.ok()) {
      return absl::NotFoundError(absl::StrCat(path, ": ", blob.status().message(), " (upload it again)"));
    }
    auto file = DescribeBlob(*blob, sha->second, kind, blobs_->limits());
    if (!file.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", file.status().message()));
    (*seen)[{path, static_cast<int>(kind)}] = *file;
    return file;
  };
}

absl::StatusOr<std::unique_ptr<BlobStore::Upload>> Coordinator::BeginUpload(ManifestFileKind kind, uint64_t announced,
                                                                            const std::string& owner,
                                                                            const ClientLimits& limits) {
  const int per_minute = limits.uploads_per_minute > 0 ? limits.uploads_per_minute : options_.uploads_per_minute;
  RETURN_IF_ERROR(uploads_.Allow(owner, per_minute, SteadyMs(), "uploads_per_minute"));
  const uint64_t quota = limits.max_upload_bytes > 0 ? limits.max_upload_bytes : options_.owner_upload_bytes;
  return blobs_->Begin(kind, announced, owner, quota);
}

absl::StatusOr<int> Coordinator::CollectBlobs(int64_t now_ms) {
  // Bounded by jobs and the files they name, not by their items: a hundred thousand images
  // of one job cost one entry. Under mu_ throughout, so a job submitted meanwhile is either
  // in the listing or not yet noted (its files were touched at submit: their grace covers it).
  std::set<std::string> named;
  {
    auto core = Lock();
    ASSIGN_OR_RETURN(auto jobs, core->store().UnfinishedJobs());
    std::set<std::string> unfinished;
    for (const JobRecord& job : jobs) unfinished.insert(job.id);
    std::lock_guard<std::mutex> lock(named_mu_);
    for (auto it = named_by_job_.begin(); it != named_by_job_.end();) {
      if (!unfinished.count(it->first)) {
        it = named_by_job_.erase(it);  // finished: its files are free
        continue;
      }
      named.insert(it->second.begin(), it->second.end());
      ++it;
    }
  }
  const int deleted = blobs_->Collect(named, now_ms, options_.blob_grace_ms);
  if (deleted > 0) spdlog::info("deleted {} uploaded files no unfinished job names", deleted);
  return deleted;
}

void Coordinator::CountBlobFetch(const std::string& sha256, uint64_t bytes) {
  metrics_.AddBlobFetch(bytes);
  spdlog::info("sent uploaded file {} ({} bytes) to a worker", sha256, bytes);
}

absl::StatusOr<v1::SubmitJobResponse> Coordinator::Submit(const v1::SubmitJobRequest& request,
                                                          const std::string& owner, const ClientLimits& limits) {
  const std::string file = request.manifest_name().empty() ? "manifest" : request.manifest_name();
  // A ComfyUI workflow (told by its content) fills the same typed manifest a manifest does.
  auto manifest = comfyui::IsWorkflow(request.manifest())
                      ? comfyui::ImportWorkflowText(request.manifest(), file, options_.limits, UploadedFiles(request, owner))
                      : ParseManifestEntries(request.manifest(), file, options_.limits, UploadedFiles(request, owner));
  if (!manifest.ok()) return manifest.status();
  RETURN_IF_ERROR(CheckSubmission(request, *manifest, file));
  if (request.preview_every() < 0 || request.preview_every() > options_.limits.max_steps) {
    return absl::InvalidArgumentError(absl::StrCat("preview_every: must be 0 (the manifest's) to ",
                                                   options_.limits.max_steps, " steps, got ", request.preview_every()));
  }
  if (!request.model_override().empty()) manifest->model = request.model_override();
  if (request.preview_every() > 0) manifest->preview_every = request.preview_every();
  return StoreJob(*std::move(manifest), request.idempotency_key(), owner, limits);
}

absl::StatusOr<v1::SubmitJobResponse> Coordinator::SubmitManifest(Manifest manifest, const std::string& idempotency_key,
                                                                  const std::string& owner, const ClientLimits& limits) {
  RETURN_IF_ERROR(CheckUploadsNamed(manifest, owner));
  return StoreJob(std::move(manifest), idempotency_key, owner, limits);
}

// A typed manifest names uploads by hash: each must be the owner's, as the text path's
// resolver requires (UploadedFiles), and is touched so collection waits for the job.
absl::Status Coordinator::CheckUploadsNamed(const Manifest& manifest, const std::string& owner) {
  std::set<std::string> named;
  for (const ManifestEntry& entry : manifest.entries) {
    ItemRecord item;
    item.image = entry.image;
    item.sampling = entry.sampling;
    AddBlobsNamedBy(item, &named);
  }
  for (const std::string& sha256 : named) {
    auto blob = blobs_->PathFor(sha256, owner);
    if (blob.ok()) {
      if (auto touched = blobs_->Touch(sha256); !touched.ok()) blob = touched;
    }
    if (!blob.ok()) return absl::NotFoundError(absl::StrCat("uploaded file ", sha256, ": ", blob.status().message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::SubmitJobResponse> Coordinator::StoreJob(Manifest manifest, const std::string& idempotency_key,
                                                            const std::string& owner, const ClientLimits& limits) {
  std::mt19937_64 rng(std::random_device{}());
  JobRecord job;
  job.id = RandomId("job-");
  job.name = manifest.name;
  job.model = manifest.model;
  job.priority = manifest.priority;
  job.created_ms = WallMs();
  job.idempotency_key = idempotency_key;
  job.postprocess = manifest.postprocess;
  job.preview_every = manifest.preview_every;
  job.owner = owner;
  for (const ManifestEntry& entry : manifest.entries) job.prompts.push_back(entry.image.prompt());
  bool deduplicated = false;
  absl::StatusOr<JobRecord> stored;
  {
    auto core = Lock();
    RETURN_IF_ERROR(CheckQuota(core->store(), owner, limits, manifest.image_count));
    stored = core->store().BeginJob(job, &deduplicated);
    if (!stored.ok()) return stored.status();
    if (deduplicated) {
      v1::SubmitJobResponse response;
      response.set_deduplicated(true);
      *response.mutable_job() = core->jobs().Snapshot(*stored);
      return response;
    }
  }
  // Images are made and stored a chunk at a time, the lock released between chunks: memory
  // stays flat whatever the job's size, and workers are served while a large job loads.
  constexpr size_t kChunk = 10000;
  std::vector<ItemRecord> chunk;
  chunk.reserve(std::min<int64_t>(kChunk, manifest.image_count));
  std::set<std::string> named;  // the uploaded files the job's items name
  auto flush = [&]() -> absl::Status {
    absl::Status s = Lock()->store().AddItems(stored->id, chunk);
    chunk.clear();
    return s;
  };
  absl::Status loaded = absl::OkStatus();
  for (const ManifestEntry& entry : manifest.entries) {
    for (int k = 0; k < entry.count && loaded.ok(); ++k) {
      const ManifestImage image = ExpandImage(entry, k, [&] { return rng() >> 1; });
      ItemRecord it;
      it.index = image.index;
      it.image = std::move(image.image);
      it.sampling = std::move(image.sampling);
      it.random_seed = image.random_seed;
      AddBlobsNamedBy(it, &named);
      chunk.push_back(std::move(it));
      if (chunk.size() == kChunk) loaded = flush();
    }
  }
  if (loaded.ok() && !chunk.empty()) loaded = flush();
  auto core = Lock();
  if (loaded.ok()) loaded = core->store().QueueJob(stored->id);
  if (!loaded.ok()) {
    core->store().DropLoadingJob(stored->id).IgnoreError();
    return loaded;
  }
  stored->state = JobState::kQueued;
  {
    std::lock_guard<std::mutex> lock(named_mu_);
    named_by_job_[stored->id] = std::move(named);
  }
  v1::SubmitJobResponse response;
  *response.mutable_job() = core->jobs().Snapshot(*stored);
  spdlog::info("job {} '{}': {} images of model {}", stored->id, stored->name, manifest.image_count, stored->model);
  core->jobs().Add(*stored);
  v1::JobEvent event;
  event.mutable_queued()->set_items(static_cast<int>(manifest.image_count));
  core->jobs().Emit(stored->id, std::move(event));
  core->Schedule();
  return response;
}

absl::StatusOr<v1::GetJobResponse> Coordinator::GetJob(const v1::GetJobRequest& request) {
  auto core = Lock();
  ASSIGN_OR_RETURN(auto job, core->jobs().Get(request.job_id()));
  v1::GetJobResponse response;
  *response.mutable_job() = core->jobs().Snapshot(job);
  if (request.include_items()) {
    ASSIGN_OR_RETURN(auto items, core->store().Items(job.id));
    for (const ItemRecord& it : items) *response.add_items() = ToProto(it);
  }
  return response;
}

absl::StatusOr<std::string> Coordinator::JobOwner(const std::string& job_id) {
  ASSIGN_OR_RETURN(auto job, Lock()->jobs().Get(job_id));
  return job.owner;
}

absl::StatusOr<v1::ListJobsResponse> Coordinator::ListJobs(const v1::ListJobsRequest& request,
                                                           const std::optional<std::string>& owner) {
  constexpr int kMaxLimit = 1000;
  constexpr size_t kMaxQueryBytes = 1000;
  if (request.limit() < 0) return absl::InvalidArgumentError("limit: must not be negative");
  if (request.offset() < 0) return absl::InvalidArgumentError("offset: must not be negative");
  if (request.query().size() > kMaxQueryBytes) {
    return absl::InvalidArgumentError(absl::StrCat("query: at most ", kMaxQueryBytes, " bytes"));
  }
  if (request.created_from_unix_ms() < 0 || request.created_until_unix_ms() < 0) {
    return absl::InvalidArgumentError("created_from_unix_ms, created_until_unix_ms: must not be negative");
  }
  JobQuery query;
  query.text = request.query();
  query.created_from_ms = request.created_from_unix_ms();
  query.created_until_ms = request.created_until_unix_ms();
  query.owner = owner;
  query.offset = request.offset();
  query.limit = request.limit() > 0 ? std::min(request.limit(), kMaxLimit) : 100;
  auto core = Lock();
  ASSIGN_OR_RETURN(JobPage page, core->store().FindJobs(query));
  v1::ListJobsResponse response;
  for (const JobRecord& job : page.jobs) *response.add_jobs() = core->jobs().Snapshot(job);
  response.set_total(static_cast<int32_t>(std::min<int64_t>(page.total, INT32_MAX)));
  return response;
}

absl::StatusOr<v1::CancelJobResponse> Coordinator::Cancel(const v1::CancelJobRequest& request) {
  const std::string& id = request.job_id();
  {
    auto core = Lock();
    // At once: the job is cancelled for watchers and the planner, and its running items stop.
    ASSIGN_OR_RETURN(auto batches, core->store().StartCancel(id));
    // Running batches stop between steps; their other jobs' items return to the queue when
    // the worker reports the cancellation.
    core->StopBatches(batches);
    spdlog::info("job {} cancelled ({} running batches told to stop)", id, batches.size());
    core->jobs().Forget(id);
  }
  // Then its queued items, a chunk per transaction, the lock released between chunks: a job
  // of a hundred thousand items never holds up the other calls.
  RETURN_IF_ERROR(CancelQueuedItems([this, &id](int limit) { return Lock()->store().CancelQueuedItems(id, limit); }));
  auto core = Lock();
  core->jobs().FinishIfComplete({id});
  ASSIGN_OR_RETURN(auto job, core->store().GetJob(id));
  v1::CancelJobResponse response;
  *response.mutable_job() = core->jobs().Snapshot(job);
  return response;
}

absl::Status Coordinator::DeleteJob(const std::string& job_id) {
  // The rows go first: a job whose files outlive a failed delete can be deleted again by
  // hand, one whose rows outlive its files would list images that are gone.
  ASSIGN_OR_RETURN(auto files, ResultFiles(job_id, /*include_renders=*/true));
  {
    auto core = Lock();
    RETURN_IF_ERROR(core->store().DeleteJob(job_id));
    core->jobs().Forget(job_id);
  }
  std::error_code ignored;
  for (const std::string& file : files) std::filesystem::remove(file, ignored);
  std::filesystem::remove_all(JobDir(options_.output_dir, job_id), ignored);
  spdlog::info("job {} deleted with its {} result files", job_id, files.size());
  return absl::OkStatus();
}

absl::StatusOr<int64_t> Coordinator::Watch(const std::string& job_id, EventSink sink) {
  return Lock()->jobs().Watch(job_id, std::move(sink));
}

void Coordinator::Unwatch(int64_t handle) { Lock()->jobs().Unwatch(handle); }

absl::StatusOr<std::vector<std::string>> Coordinator::ResultFiles(const std::string& job_id, bool include_renders) {
  std::vector<ItemRecord> items;
  {
    auto core = Lock();
    ASSIGN_OR_RETURN(items, core->store().Items(job_id));
    if (items.empty()) {
      RETURN_IF_ERROR(core->store().GetJob(job_id));
    }
  }
  std::vector<std::string> files;
  for (const ItemRecord& it : items) {
    if (it.state != ItemState::kDone) continue;
    if (it.sprite_path.empty() || include_renders) files.push_back(it.image_path);
    if (!it.sprite_path.empty()) files.push_back(it.sprite_path);
    const std::string png = it.image_path;
    files.push_back(png.substr(0, png.size() - 4) + ".json");
  }
  const std::string summary = JobDir(options_.output_dir, job_id) + "/job.json";
  if (std::filesystem::exists(summary)) files.push_back(summary);
  // Rows name the files; only those inside the results folder are served. Checked without
  // the lock: a large job's files take a while to resolve.
  for (std::string& file : files) {
    auto confined = ConfinedResultPath(options_.output_dir, file);
    if (!confined.ok()) {
      spdlog::error("job {}: {}", job_id, std::string(confined.status().message()));
      return absl::InternalError(
          absl::StrCat("job ", job_id, ": a result file lies outside the results folder and is not served"));
    }
    file = std::move(*confined);
  }
  return files;
}

// ------------------------------------------------------------------ workers

absl::Status Coordinator::Register(std::shared_ptr<WorkerChannel> channel, const v1::Register& reg,
                                  const std::string& credential) {
  RETURN_IF_ERROR(CheckRegister(reg));
  auto core = Lock();
  const std::string id = reg.worker_id().empty() ? RandomId("worker-") : reg.worker_id();
  ASSIGN_OR_RETURN(WorkerState * registered, core->workers().Register(std::move(channel), reg, id, WallMs(), credential));
  WorkerState& w = *registered;
  nlohmann::json info = {{"device", reg.device_name()},
                         {"compute_capability", reg.compute_capability()},
                         {"unified_memory", reg.unified_memory()},
                         {"total_bytes", reg.memory().total_bytes()},
                         {"budget_bytes", reg.memory().budget_bytes()},
                         {"models", std::vector<std::string>(reg.models().begin(), reg.models().end())},
                         {"max_batch", reg.max_batch()}};
  RETURN_IF_ERROR(core->store().UpsertWorker({id, info.dump(), w.last_seen_ms, 0}));
  spdlog::info("worker {} registered: {} ({}), budget {:.2f} GB, models [{}], max batch {}", id, reg.device_name(),
               reg.compute_capability(), reg.memory().budget_bytes() / 1e9, absl::StrJoin(reg.models(), ", "),
               reg.max_batch());
  v1::CoordinatorMessage msg;
  msg.mutable_registered()->set_worker_id(id);
  msg.mutable_registered()->set_heartbeat_interval_ms(options_.heartbeat_ms);
  core->Send(w, msg);
  core->Schedule();
  return absl::OkStatus();
}

void Coordinator::OnMessage(WorkerChannel* channel, const v1::WorkerMessage& message) {
  std::optional<ResultWork> result;
  {
    auto core = Lock();
    WorkerState* w = core->workers().Of(channel);
    if (!w) return;  // dropped: whatever it says no longer counts
    result = core->OnMessage(*w, message);
  }
  // Checks and files run without the lock, in the pipeline or (without threads) here.
  if (result) results_->Submit(std::move(*result));
}

void Coordinator::OnDisconnect(WorkerChannel* channel) {
  auto core = Lock();
  if (WorkerState* w = core->workers().Disconnect(channel)) core->OnDisconnect(*w);
}

void Coordinator::Tick() {
  Lock()->Expire(WallMs());
  if (options_.upload_idle_ms > 0) blobs_->ExpireStalled(SteadyMs(), options_.upload_idle_ms);
  if (const int64_t now = WallMs(); now >= next_collect_ms_) {
    // Often enough that a blob outlives its grace by a fraction of it at most.
    next_collect_ms_ = now + std::clamp<int64_t>(options_.blob_grace_ms / 4, 1000, 600000);
    if (auto collected = CollectBlobs(now); !collected.ok()) {
      spdlog::warn("uploaded files not collected: {}", std::string(collected.status().message()));
    }
  }
  last_tick_ms_ = SteadyMs();
}

absl::Status Coordinator::CheckAlive(int64_t max_tick_age_ms, int64_t lock_timeout_ms) {
  const int64_t age = SteadyMs() - last_tick_ms_;
  if (age > max_tick_age_ms) {
    return absl::UnavailableError(absl::StrCat("the service loop last ran ", age / 1000.0, " s ago"));
  }
  const int64_t deadline = SteadyMs() + lock_timeout_ms;
  std::unique_lock<std::mutex> lock(mu_, std::defer_lock);
  while (!lock.try_lock()) {
    if (SteadyMs() >= deadline) {
      return absl::UnavailableError(absl::StrCat("the coordinator stayed busy for ", lock_timeout_ms, " ms"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return absl::OkStatus();
}

// ------------------------------------------------------------------ views

// Read-only views of the coordinator's state: workers, gauges, /metrics and stats.

v1::ListWorkersResponse Coordinator::ListWorkers() {
  auto core = Lock();
  v1::ListWorkersResponse response;
  for (const auto& [id, w] : core->workers().all()) {
    v1::WorkerView* v = response.add_workers();
    const v1::Register& r = w.registration;
    v->set_id(id);
    v->set_device_name(r.device_name());
    v->set_compute_capability(r.compute_capability());
    v->set_unified_memory(r.unified_memory());
    v->set_total_bytes(w.memory.total_bytes());
    v->set_free_bytes(w.memory.free_bytes());
    v->set_budget_bytes(w.memory.budget_bytes());
    v->set_used_bytes(w.used_bytes());
    v->set_machine_used_bytes(w.machine_used_bytes());
    v->set_resident_bytes(w.memory.resident_bytes());
    v->set_peak_bytes(w.peak_bytes);
    for (const auto& m : r.models()) v->add_models(m);
    v->set_max_batch(r.max_batch());
    v->set_connected(w.channel != nullptr);
    v->set_running_items(core->batches().RunningItems(id));
    v->set_images_done(w.images_done);
    v->set_images_per_second(w.images_per_second);
    v->set_last_seen_unix_ms(w.last_seen_ms);
  }
  return response;
}

std::vector<v1::Register> Coordinator::ConnectedRegistrations() {
  auto core = Lock();
  std::vector<v1::Register> out;
  for (const auto& [id, w] : core->workers().all()) {
    if (w.channel == nullptr) continue;
    out.push_back(w.registration);
    out.back().set_worker_id(id);
  }
  return out;
}

GaugeSnapshot Coordinator::Gauges(Locked& core) {
  GaugeSnapshot g;
  if (auto totals = core->store().Totals(); totals.ok()) {
    g.queue_depth = (*totals)["queued"];
    g.running_items = (*totals)["running"];
  }
  g.jobs_active = static_cast<int64_t>(core->jobs().active_count());
  for (const auto& [id, w] : core->workers().all()) {
    WorkerGauges& out = g.workers.emplace_back();
    out.id = id;
    out.connected = w.channel != nullptr;
    out.images_per_second = w.images_per_second;
    out.peak_bytes = w.peak_bytes;
    out.budget_bytes = w.memory.budget_bytes();
    out.used_bytes = w.used_bytes();
    out.machine_used_bytes = w.machine_used_bytes();
    out.images_done = w.images_done;
    out.last_seen_ms = w.last_seen_ms;
  }
  return g;
}

std::string Coordinator::MetricsText() {
  auto core = Lock();
  return metrics_.Render(Gauges(core));
}

v1::GetStatsResponse Coordinator::Stats() {
  auto core = Lock();
  const GaugeSnapshot g = Gauges(core);
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
    ws->set_memory_machine_used_bytes(w.machine_used_bytes);
  }
  return out;
}

}  // namespace spriteforge::coordinator
