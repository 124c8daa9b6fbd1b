// The job book: jobs with unfinished items (a cache of their store records), the planner's
// windows on their queues, and the watchers of each job's events. It decides when a job
// is finished (and writes its job.json), what a job's snapshot says, and when a job whose
// model no connected worker serves is told so or fails. The store stays the truth.
// Not thread-safe: the coordinator calls it only under its lock.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "coordinator/scheduling/planner.h"
#include "coordinator/core/job_queues.h"
#include "coordinator/core/outbox.h"
#include "coordinator/store/blob_store.h"
#include "coordinator/store/store.h"
#include "spriteforge/v1/spriteforge.pb.h"

namespace spriteforge::coordinator {

namespace v1 = ::spriteforge::v1;

class JobBook {
 public:
  using EventSink = std::function<void(const v1::JobEvent&)>;
  // Whether a connected worker serves the model (the worker registry answers).
  using Serves = std::function<bool(const std::string& model)>;
  // "" when a connected worker serving the key's model has its named ControlNets and
  // IP-Adapter, else what none has ("ControlNet 'openpose'").
  using Lacks = std::function<std::string(const BatchKey& key)>;

  // `blobs` may be null (uploaded LoRAs then weigh nothing in batch keys).
  // `unserved_timeout_ms`: queued items of a job whose model nobody serves fail after it; 0: never.
  // `lacks` (optional): jobs whose queued items need named models no worker has wait and fail
  // as unserved jobs do.
  JobBook(Store* store, BlobStore* blobs, Outbox* outbox, std::string output_dir, int64_t unserved_timeout_ms,
          Serves serves, Lacks lacks = nullptr);
  JobBook(const JobBook&) = delete;
  JobBook& operator=(const JobBook&) = delete;

  // A job with queued items: cached, and its queue read when the planner first needs it.
  void Add(JobRecord job);
  // A cancelled job: out of the cache and the queues.
  void Forget(const std::string& job_id);
  // From the cache, else the store (an unfinished job read from the store is cached).
  absl::StatusOr<JobRecord> Get(const std::string& job_id);
  // The cached record of an unfinished job; null otherwise.
  const JobRecord* Active(const std::string& job_id) const;
  size_t active_count() const { return jobs_.size(); }

  // The job as clients see it: counts, rate, ETA and why it waits.
  v1::Job Snapshot(const JobRecord& job);

  // Sends the event, with the job's snapshot, to the job's watchers (through the outbox).
  void Emit(const std::string& job_id, v1::JobEvent event);
  // The sink first gets a snapshot (and job_done for a finished job), then every event.
  absl::StatusOr<int64_t> Watch(const std::string& job_id, EventSink sink);
  void Unwatch(int64_t handle);
  size_t watcher_count() const { return watchers_.size(); }

  // Records the jobs whose items have all finished: job.json written, job_done emitted.
  void FinishIfComplete(const std::set<std::string>& job_ids);

  // Tells watchers when a job's model loses its last worker (or the last worker with a
  // ControlNet or IP-Adapter its queued items name); fails the job's queued items once
  // that lasted the timeout. `steady_now_ms`: a monotonic clock. Returns the number
  // of items failed.
  int CheckUnserved(int64_t steady_now_ms);

  // The batch key of an item of an active job (its model, its sampling, its uploaded LoRAs' size).
  BatchKey KeyOf(const ItemRecord& item);
  JobQueues& queues() { return queues_; }

  // References from earlier results (ImageParams.reference_from_index, a set's
  // `reference: {first: true}`): an item that takes another item's result as its reference
  // picture stays out of the queue windows until that item is done; then the result's PNG
  // is kept as a blob and the item is sent with reference_sha256 naming it. When that item
  // fails or is cancelled, so do the items waiting for it. Nothing of this is stored: after
  // a restart the stored state of the item referred to decides again, when the waiting
  // items are read from the store.
  //
  // Whether the queued item waits (the queues' predicate); asks the store once per item
  // referred to.
  bool Holds(const ItemRecord& item);
  // A result recorded (its PNG at `image_path`): the items waiting for it join the queue.
  void ItemDone(const std::string& job_id, int index, const std::string& image_path);
  // An item failed or was cancelled for good: the items waiting for it are to fail
  // (FailOrphans).
  void ItemFailed(const ItemRecord& item);
  // Fails the queued items whose reference failed, with the reason of the item referred to;
  // returns them.
  std::vector<ItemRecord> FailOrphans();
  // Before an item is sent: reference_sha256 filled in from the result it refers to.
  void FillReference(const std::string& job_id, v1::ImageParams* image);

 private:
  struct Watcher {
    std::string job_id;
    EventSink sink;
  };
  void Send(const std::string& job_id, const v1::JobEvent& event);
  uint64_t BlobSize(const std::string& sha256);  // 0: none or unknown
  // Job id -> the named model no connected worker has, for jobs whose queue window needs one.
  std::map<std::string, std::string> MissingModels();

  Store* store_;
  BlobStore* blobs_;
  Outbox* outbox_;
  const std::string output_dir_;
  const int64_t unserved_timeout_ms_;
  Serves serves_;
  Lacks lacks_;
  std::map<std::string, JobRecord> jobs_;  // jobs with unfinished items
  JobQueues queues_;                       // the head of each active job's queue
  std::map<int64_t, Watcher> watchers_;
  int64_t next_watch_ = 1;
  std::map<std::string, int64_t> unserved_since_;  // job id -> when its model lost its workers
  std::map<std::string, uint64_t> blob_sizes_;     // uploaded files' sizes (blobs never change)

  // An item referred to by others, as (job id, index).
  using Source = std::pair<std::string, int>;
  struct Reference {
    std::string sha256;  // the blob of its result
    std::string image_path;
  };
  struct Orphaning {
    int reason = 0;
    std::string message;
  };
  // What the store says of the source now: done (kept as a blob), failed (orphaning its
  // dependants) or neither.
  void Resolve(const Source& source);
  absl::Status Adopt(const Source& source, const std::string& image_path);
  void Orphan(const Source& source, const ItemRecord& failed);
  std::map<Source, std::set<int>> held_;         // unfinished source -> the items waiting for it
  std::map<Source, Reference> references_;       // done source -> its result as a blob
  std::map<Source, Orphaning> orphaned_;         // failed source -> why its dependants fail
};

}  // namespace spriteforge::coordinator
