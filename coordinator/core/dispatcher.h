// The coordinator's state and the rules that join its parts: the job book, the worker
// registry and the batch ledger, with the store they record to. The dispatcher plans
// through the pure planner (which workers take which queued items), leases and sends
// batches, and turns what workers report (steps, previews, results, failures, silence)
// into store writes, job events and released batches.
//
// Lock discipline: the dispatcher and its parts have no lock of their own. The
// Coordinator owns one, and reaches the dispatcher only through a handle that holds it
// (Coordinator::Locked), so every call here runs under that lock and none takes or
// releases it. What must happen outside it is handed on: messages to workers and events
// to watchers go through the outbox; a result to check is returned to the caller, which
// submits it to the result pipeline once its lock is released.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "coordinator/core/batch_ledger.h"
#include "coordinator/core/coordinator_options.h"
#include "coordinator/core/job_book.h"
#include "coordinator/core/metrics.h"
#include "coordinator/core/outbox.h"
#include "coordinator/core/result_pipeline.h"
#include "coordinator/core/worker_registry.h"
#include "coordinator/store/blob_store.h"
#include "coordinator/store/store.h"

namespace spriteforge::coordinator {

class Dispatcher {
 public:
  // `blobs`, `outbox` and `metrics` outlive the dispatcher.
  Dispatcher(std::unique_ptr<Store> store, BlobStore* blobs, Outbox* outbox, Metrics* metrics,
             const CoordinatorOptions& options);
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  Store& store() { return *store_; }
  JobBook& jobs() { return jobs_; }
  WorkerRegistry& workers() { return workers_; }
  BatchLedger& batches() { return batches_; }

  // Plans and sends batches while workers have room and queues have items.
  void Schedule();
  // Sends to the worker's stream, through the outbox; nothing while it is disconnected.
  void Send(const WorkerState& worker, const v1::CoordinatorMessage& message);
  // Tells the workers holding these batches to stop them (a cancelled job's).
  void StopBatches(const std::vector<std::string>& batch_ids);

  // A message from a connected worker. A result comes back to be checked and stored by
  // the caller after its lock is released; everything else is handled here.
  std::optional<ResultWork> OnMessage(WorkerState& worker, const v1::WorkerMessage& message);
  // The worker's stream ended: it keeps its record; its batches return to the queue.
  void OnDisconnect(WorkerState& worker);
  // Records a group of checked and staged results in one transaction.
  void CommitResults(std::vector<StagedResult>& group);
  // Drops silent workers and those whose leases expired, releases orphaned batches, and
  // checks jobs whose model nobody serves.
  void Expire(int64_t now_ms);

  // Drops the worker: its batches return to the queue and its stream is closed.
  void DropWorker(WorkerState& worker, const std::string& why);

 private:
  bool ScheduleRound();  // one planning pass; false when it assigned nothing
  void ReleaseBatch(const std::string& batch_id, v1::FailureReason reason, const std::string& message,
                    const std::map<std::pair<std::string, int>, std::string>& item_messages = {});
  // Every batch the worker holds returns to the queue, not counting against the items.
  void ReleaseWorkerBatches(const WorkerState& worker, const std::string& why);
  // Forgets workers disconnected for longer than the retention time, here and in the store.
  void ForgetWorkers(int64_t now_ms);
  // Real progress on a batch the worker holds: its stored leases are extended (at most
  // once per tenth of a lease).
  void Progressed(WorkerState& worker, int64_t now_ms);
  // The batch's worker returned invalid results for its items: they are not to go back to
  // it while another connected worker serves their model. True when such a worker exists
  // (the attempt then does not use up the items' attempts).
  bool NoteInvalidResults(const BatchState& batch);
  // Per worker, the items it is to avoid now (WorkerView::avoid).
  std::map<std::string, std::set<std::pair<std::string, int>>> ItemsToAvoid();
  // Fails the items whose reference (another item's result) failed, counting them.
  void FailOrphans();
  void HandleFailure(WorkerState& worker, const v1::BatchFailure& failure);
  void HandleProgress(const WorkerState& worker, const v1::StepProgress& progress);
  void HandlePreview(const WorkerState& worker, const v1::BatchPreview& preview);  // relayed, never stored

  const CoordinatorOptions& options_;
  std::unique_ptr<Store> store_;
  Outbox* outbox_;
  Metrics* metrics_;
  WorkerRegistry workers_;
  JobBook jobs_;
  BatchLedger batches_;
  StoragePause storage_pause_;
  std::map<std::string, int64_t> last_served_;  // job id -> round it was last given a batch
  struct InvalidOn {
    std::string model;
    std::set<std::string> workers;  // that returned invalid results for the item
  };
  std::map<std::pair<std::string, int>, InvalidOn> invalid_on_;  // (job id, index) -> ...
  int64_t serve_counter_ = 0;
  int64_t next_worker_sweep_ms_ = 0;  // wall clock of the next ForgetWorkers pass
};

}  // namespace spriteforge::coordinator
