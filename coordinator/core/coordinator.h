// The coordinator's core: jobs in, batches out, results stored. A thin facade over its
// parts, each the owner of one kind of state: the job book (jobs, queues, watchers), the
// worker registry (sessions, heartbeats, lease clocks), the batch ledger (assignments in
// flight) and the dispatcher that joins them through the planner (see dispatcher.h).
// The gRPC and HTTP layers only translate calls into these methods. One mutex guards all
// of the state, reached only through a Locked handle, so the order of events is the order
// of store commits; the outbox and the result pipeline do their work outside it.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/manifest.h"
#include "coordinator/core/limits.h"
#include "coordinator/core/coordinator_options.h"
#include "coordinator/core/dispatcher.h"
#include "coordinator/core/metrics.h"
#include "coordinator/core/outbox.h"
#include "coordinator/core/result_pipeline.h"
#include "coordinator/core/worker_registry.h"
#include "coordinator/store/blob_store.h"
#include "coordinator/store/store.h"
#include "spriteforge/v1/spriteforge.pb.h"

namespace spriteforge::coordinator {

namespace v1 = ::spriteforge::v1;

class Coordinator {
 public:
  using EventSink = std::function<void(const v1::JobEvent&)>;

  // Recovers the store (leases of a previous process return to the queue).
  static absl::StatusOr<std::unique_ptr<Coordinator>> Create(std::unique_ptr<Store> store,
                                                             CoordinatorOptions options);

  // ---- client API
  // The job belongs to `owner` (a token's name; empty without --auth), whose unfinished
  // work must stay within `limits` (RESOURCE_EXHAUSTED naming the limit otherwise).
  absl::StatusOr<v1::SubmitJobResponse> Submit(const v1::SubmitJobRequest& request, const std::string& owner = "",
                                               const ClientLimits& limits = {});
  // A job already in typed form, as the HTTP dialects build it (ManifestBuilder): stored as
  // Submit stores a parsed manifest, never written out and parsed again. Every uploaded file
  // its items name must be `owner`'s (NOT_FOUND otherwise).
  absl::StatusOr<v1::SubmitJobResponse> SubmitManifest(Manifest manifest, const std::string& idempotency_key,
                                                       const std::string& owner = "", const ClientLimits& limits = {});
  absl::StatusOr<v1::GetJobResponse> GetJob(const v1::GetJobRequest& request);
  // `owner`: only that owner's jobs.
  absl::StatusOr<v1::ListJobsResponse> ListJobs(const v1::ListJobsRequest& request,
                                                const std::optional<std::string>& owner = std::nullopt);
  absl::StatusOr<std::string> JobOwner(const std::string& job_id);
  absl::StatusOr<v1::CancelJobResponse> Cancel(const v1::CancelJobRequest& request);
  // Removes a finished job, its rows and its results folder (FAILED_PRECONDITION while it runs).
  absl::Status DeleteJob(const std::string& job_id);
  v1::ListWorkersResponse ListWorkers();
  // What each connected worker registered with: its models and the files of its model folders.
  std::vector<v1::Register> ConnectedRegistrations();
  v1::GetStatsResponse Stats();
  std::string MetricsText();
  // Paths of the job's result files (images, sidecars, sprites, job.json).
  absl::StatusOr<std::vector<std::string>> ResultFiles(const std::string& job_id, bool include_renders);

  // Subscribes to a job: the sink first gets a snapshot, then every event, in order, from
  // the outbox thread (never under the core's lock). Returns a handle for Unwatch.
  absl::StatusOr<int64_t> Watch(const std::string& job_id, EventSink sink);
  void Unwatch(int64_t handle);

  // ---- worker gateway
  // `credential`: what the stream proved at admission (Gatekeeper::AdmitWorker); quarantine
  // holds it as well as the worker id. Empty: none known.
  absl::Status Register(std::shared_ptr<WorkerChannel> channel, const v1::Register& reg,
                        const std::string& credential = "");
  void OnMessage(WorkerChannel* channel, const v1::WorkerMessage& message);
  void OnDisconnect(WorkerChannel* channel);

  // Expires silent workers and stale leases, then dispatches. Called periodically.
  void Tick();

  // Ok while the service loop is alive: Tick ran within `max_tick_age_ms` and the core's
  // lock can be taken within `lock_timeout_ms`. For health checks.
  absl::Status CheckAlive(int64_t max_tick_age_ms, int64_t lock_timeout_ms);

  // ---- uploads
  // Begins an upload for `owner` (a token's name, or the client's host without tokens)
  // within its uploads per minute, its quota of stored bytes and the blob folder's budget
  // (`limits` over the options' defaults); RESOURCE_EXHAUSTED naming the limit otherwise.
  absl::StatusOr<std::unique_ptr<BlobStore::Upload>> BeginUpload(ManifestFileKind kind, uint64_t announced,
                                                                 const std::string& owner, const ClientLimits& limits);
  // Deletes the blobs no unfinished job names that were unused for the grace period;
  // returns how many. Tick calls it every few minutes, on wall-clock `now_ms`.
  absl::StatusOr<int> CollectBlobs(int64_t now_ms);

  const CoordinatorOptions& options() const { return options_; }
  BlobStore* blobs() { return blobs_.get(); }
  // A worker fetched an uploaded file (for the log and /metrics).
  void CountBlobFetch(const std::string& sha256, uint64_t bytes);
  ~Coordinator();

 private:
  // Holding one is holding the lock: the only way to reach the state.
  class Locked {
   public:
    Locked(std::mutex& mu, Dispatcher& core) : lock_(mu), core_(core) {}
    Dispatcher* operator->() { return &core_; }

   private:
    std::unique_lock<std::mutex> lock_;
    Dispatcher& core_;
  };

  Coordinator(std::unique_ptr<Store> store, std::unique_ptr<BlobStore> blobs, CoordinatorOptions options);
  Locked Lock() { return Locked(mu_, *core_); }

  // Resolves the files a submitted manifest names through the uploads the request lists.
  FileResolver UploadedFiles(const v1::SubmitJobRequest& request, const std::string& owner);
  absl::Status CheckUploadsNamed(const Manifest& manifest, const std::string& owner);
  // Stores a checked manifest's job and its items, a chunk at a time, and queues it.
  absl::StatusOr<v1::SubmitJobResponse> StoreJob(Manifest manifest, const std::string& idempotency_key,
                                                 const std::string& owner, const ClientLimits& limits);
  GaugeSnapshot Gauges(Locked& core);

  const CoordinatorOptions options_;
  Metrics metrics_;
  std::unique_ptr<BlobStore> blobs_;
  RateLimiter uploads_;                    // per owner
  std::atomic<int64_t> next_collect_ms_{0};  // wall clock of the next CollectBlobs from Tick
  // The uploaded files each unfinished job names, noted as it is submitted (from its items
  // at start): collection unions these rather than reading every item under mu_. Taken
  // after mu_ when both are held.
  std::mutex named_mu_;
  std::map<std::string, std::set<std::string>> named_by_job_;
  std::atomic<int64_t> last_tick_ms_;  // steady clock
  Outbox outbox_;
  std::mutex mu_;                     // guards everything in core_
  std::unique_ptr<Dispatcher> core_;
  std::unique_ptr<ResultPipeline> results_;  // last: its committer takes the lock and calls into core_
};

}  // namespace spriteforge::coordinator
