// The coordinator's core: jobs in, batches out, results stored. It owns the store, the
// worker registry with one calibrated memory model per worker, and the job event streams.
// The gRPC layer (client_service, worker_gateway) only translates calls into these
// methods; everything here runs under one mutex, so the order of events is the order of
// store commits.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "common/manifest.h"
#include "coordinator/scheduling/memory_model.h"
#include "coordinator/scheduling/planner.h"
#include "coordinator/service/auth.h"
#include "coordinator/service/job_queues.h"
#include "coordinator/service/metrics.h"
#include "coordinator/service/result_check.h"
#include "coordinator/service/result_pipeline.h"
#include "coordinator/store/blob_store.h"
#include "coordinator/store/store.h"
#include "spriteforge/v1/spriteforge.pb.h"

namespace spriteforge::coordinator {

namespace v1 = ::spriteforge::v1;

// One worker's stream, as the core sees it. The core calls it only from its outbox thread,
// never under its lock, because gRPC may run reactions inline in the calling thread.
class WorkerChannel {
 public:
  virtual ~WorkerChannel() = default;
  virtual void Send(const v1::CoordinatorMessage& message) = 0;
  virtual void Close(const std::string& reason) = 0;  // ends the stream from our side
};

struct CoordinatorOptions {
  std::string output_dir;
  int64_t lease_ms = 15000;       // a batch whose worker is silent this long returns to the queue
  int heartbeat_ms = 1000;        // asked of workers; every message renews their leases
  int max_attempts = 3;           // an item failing this often (not out of memory) fails for good
  int storage_attempts = 20;      // tries of an item whose result cannot be written (disk full)
  // Batches a worker may hold beyond the one it renders (capped by what it asks for), so
  // the next batch is already on the worker when the GPU finishes one.
  int max_prefetch = 1;
  int invalid_result_strikes = 3; // batches in a row with invalid results that quarantine a worker
  int64_t quarantine_ms = 600000; // how long a quarantined worker is refused
  // A job whose model no connected worker serves fails its queued items after this long;
  // 0 waits forever. The wait restarts with the coordinator.
  int64_t unserved_model_timeout_ms = 0;
  // Threads that decode-check and stage results off the gRPC threads, with one group
  // commit after them; 0: each result in the thread that received it.
  int result_threads = 0;
  size_t max_waiting_result_bytes = 512u << 20;  // images waiting for checks; beyond, receiving waits
  ManifestLimits limits;
  // Files uploaded with jobs, by content hash; empty: "blobs" beside output_dir.
  std::string blob_dir;
  UploadLimits upload_limits;
};

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
  absl::StatusOr<v1::GetJobResponse> GetJob(const v1::GetJobRequest& request);
  // `owner`: only that owner's jobs.
  absl::StatusOr<v1::ListJobsResponse> ListJobs(const v1::ListJobsRequest& request,
                                                const std::optional<std::string>& owner = std::nullopt);
  absl::StatusOr<std::string> JobOwner(const std::string& job_id);
  absl::StatusOr<v1::CancelJobResponse> Cancel(const v1::CancelJobRequest& request);
  v1::ListWorkersResponse ListWorkers();
  v1::GetStatsResponse Stats();
  std::string MetricsText();
  // Paths of the job's result files (images, sidecars, sprites, job.json).
  absl::StatusOr<std::vector<std::string>> ResultFiles(const std::string& job_id, bool include_renders);

  // Subscribes to a job: the sink first gets a snapshot, then every event, in order, from
  // the outbox thread (never under the core's lock). Returns a handle for Unwatch.
  absl::StatusOr<int64_t> Watch(const std::string& job_id, EventSink sink);
  void Unwatch(int64_t handle);

  // ---- worker gateway
  absl::Status Register(std::shared_ptr<WorkerChannel> channel, const v1::Register& reg);
  void OnMessage(WorkerChannel* channel, const v1::WorkerMessage& message);
  void OnDisconnect(WorkerChannel* channel);

  // Expires silent workers and stale leases, then dispatches. Called periodically.
  void Tick();

  // Ok while the service loop is alive: Tick ran within `max_tick_age_ms` and the core's
  // lock can be taken within `lock_timeout_ms`. For health checks.
  absl::Status CheckAlive(int64_t max_tick_age_ms, int64_t lock_timeout_ms);

  const CoordinatorOptions& options() const { return options_; }
  BlobStore* blobs() { return blobs_.get(); }
  // A worker fetched an uploaded file (for the log and /metrics).
  void CountBlobFetch(const std::string& sha256, uint64_t bytes);
  ~Coordinator();

 private:
  struct WorkerState {
    std::string id;
    std::shared_ptr<WorkerChannel> channel;  // null while disconnected
    v1::Register registration;
    v1::MemoryReport memory;           // last heartbeat
    std::unique_ptr<MemoryModel> model;
    std::vector<std::string> batch_ids;  // in flight, in dispatch order
    std::set<std::string> rendered;      // of those, the ones the GPU has finished
    int64_t last_seen_ms = 0;
    int64_t last_progress_ms = 0;        // a step, a render, a result or a failure
    int64_t renewed_ms = 0;              // when its leases were last extended
    int prefetch = 0;                    // batches held beyond the one rendering
    int64_t images_done = 0;
    double images_per_second = 0;
    uint64_t peak_bytes = 0;
  };
  struct BatchState {
    std::string id;
    std::string worker_id;
    BatchKey key;
    std::vector<ItemKey> items;
    std::vector<ItemRecord> records;  // as leased: what results are checked against
    int64_t started_ms = 0;
    int64_t last_step_ms = 0;
  };
  struct Watcher {
    std::string job_id;
    EventSink sink;
  };

  Coordinator(std::unique_ptr<Store> store, std::unique_ptr<BlobStore> blobs, CoordinatorOptions options);

  // Resolves the files a submitted manifest names through the uploads the request lists.
  FileResolver UploadedFiles(const v1::SubmitJobRequest& request);
  BatchKey KeyOfLocked(const ItemRecord& item);

  // All below: called with mu_ held.
  void Schedule();
  bool ScheduleRound();  // one planning pass; false when it assigned nothing
  void ReleaseBatchLocked(const std::string& batch_id, v1::FailureReason reason, const std::string& message,
                          const std::map<std::pair<std::string, int>, std::string>& item_messages = {});
  void DropWorkerLocked(WorkerState& worker, const std::string& why);
  // The result's batch, ready for the pipeline; false when it is no longer this worker's.
  bool PrepareResultLocked(WorkerState& worker, v1::BatchResultMsg result, ResultWork* work);
  void CommitResults(std::vector<StagedResult>& group);  // takes mu_
  void HandleFailure(WorkerState& worker, const v1::BatchFailure& failure);
  void HandleProgress(WorkerState& worker, const v1::StepProgress& progress);
  // Relays previews to the jobs' watchers (never stored).
  void HandlePreview(WorkerState& worker, const v1::BatchPreview& preview);
  void ReleaseWorkerBatchesLocked(WorkerState& worker, const std::string& why);
  // Batches the worker has not finished rendering; it takes more while below 1 + prefetch.
  static int UnrenderedBatches(const WorkerState& worker);
  void FinishJobsLocked(const std::set<std::string>& job_ids);
  // Tells watchers when a job's model loses its last worker; fails the job's queued items
  // once that lasted options_.unserved_model_timeout_ms.
  void CheckUnservedJobsLocked();
  bool ServedLocked(const std::string& model) const;
  absl::StatusOr<JobRecord> JobLocked(const std::string& job_id);
  v1::Job JobSnapshotLocked(const JobRecord& job);
  void EmitLocked(const std::string& job_id, v1::JobEvent event);
  WorkerState* WorkerOf(WorkerChannel* channel);
  GaugeSnapshot GaugesLocked();
  int64_t NowMs() const;
  // Side effects on gRPC objects run in order on the outbox thread, outside mu_.
  void Post(std::function<void()> action);
  void SendLocked(WorkerState& worker, const v1::CoordinatorMessage& message);
  void RunOutbox();

  std::mutex mu_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<BlobStore> blobs_;
  std::map<std::string, uint64_t> blob_sizes_;  // uploaded LoRAs' sizes (blobs never change)
  CoordinatorOptions options_;
  Metrics metrics_;
  Quarantine quarantine_;
  std::map<std::string, WorkerState> workers_;
  std::map<std::string, BatchState> batches_;
  std::map<std::string, JobRecord> jobs_;  // cache of job records with unfinished items
  JobQueues queues_;                        // the head of each active job's queue
  std::unordered_map<WorkerChannel*, std::string> by_channel_;  // connected workers
  std::map<std::string, int64_t> last_served_;
  int64_t serve_counter_ = 0;
  std::map<int64_t, Watcher> watchers_;
  int64_t next_watch_ = 1;
  std::map<std::string, int64_t> unserved_since_;  // job id -> when its model lost its workers
  std::atomic<int64_t> last_tick_ms_;              // steady clock
  // Results that cannot be written (disk full) pause dispatching, doubling up to 30 s, so
  // workers do not render what cannot be stored; a write that succeeds resumes it.
  int64_t storage_pause_until_ms_ = 0;
  int64_t storage_backoff_ms_ = 0;

  std::mutex outbox_mu_;
  std::condition_variable outbox_cv_;
  std::deque<std::function<void()>> outbox_;
  bool stopping_ = false;
  std::thread outbox_thread_;
  std::unique_ptr<ResultPipeline> results_;  // last: its committer calls into the members above
};

}  // namespace spriteforge::coordinator
