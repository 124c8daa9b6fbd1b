// The worker registry: each worker's session (its stream while connected), what it
// registered, its last memory report, its calibrated memory model, and the clocks that
// decide its leases: when it was last heard from and when it last made progress. Which
// batches a worker holds is the batch ledger's. Not thread-safe: the coordinator calls it
// only under its lock; it never touches the store or the stream itself.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/scheduling/memory_model.h"
#include "coordinator/scheduling/planner.h"
#include "coordinator/core/result_check.h"
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

struct WorkerState {
  std::string id;
  std::string credential;  // its token, certificate or host (Gatekeeper::AdmitWorker); may be empty
  std::shared_ptr<WorkerChannel> channel;  // null while disconnected
  v1::Register registration;
  v1::MemoryReport memory;  // the last heartbeat's (the registration's until one comes)
  std::unique_ptr<MemoryModel> model;
  int64_t last_seen_ms = 0;
  int64_t last_progress_ms = 0;  // real progress on a batch it holds: a new step, a render, a result
  int64_t renewed_ms = 0;        // when its stored leases were last extended
  int prefetch = 0;              // batches held beyond the one rendering
  int64_t images_done = 0;
  double images_per_second = 0;
  uint64_t peak_bytes = 0;

  uint64_t budget_bytes() const { return memory.budget_bytes() ? memory.budget_bytes() : registration.memory().budget_bytes(); }
  // The worker's own memory (MemoryReport.process_bytes); from a worker that predates the
  // field (neither it nor resident_bytes set), the machine's.
  uint64_t used_bytes() const {
    return memory.process_bytes() || memory.resident_bytes() ? memory.process_bytes() : machine_used_bytes();
  }
  // Every process's use of the worker's device (on unified memory and CPUs, of the machine's RAM).
  uint64_t machine_used_bytes() const {
    return memory.total_bytes() > memory.free_bytes() ? memory.total_bytes() - memory.free_bytes() : 0;
  }
};

struct WorkerRules {
  int64_t lease_ms = 15000;  // silent this long: lost; without progress this long: its leases end
  int max_prefetch = 1;
  int invalid_result_strikes = 3;
  int64_t quarantine_ms = 600000;
};

class WorkerRegistry {
 public:
  explicit WorkerRegistry(WorkerRules rules);

  // Connects (or reconnects) worker `id` on `channel`. PermissionDenied while the id or the
  // credential it connected with is quarantined; AlreadyExists while another stream holds the id.
  absl::StatusOr<WorkerState*> Register(std::shared_ptr<WorkerChannel> channel, const v1::Register& reg,
                                        const std::string& id, int64_t now_ms, const std::string& credential = "");
  WorkerState* Of(WorkerChannel* channel);  // the connected worker on the stream; null otherwise
  WorkerState* Find(const std::string& id);
  // The stream is gone: the worker stays known, disconnected. Null for an unknown stream.
  WorkerState* Disconnect(WorkerChannel* channel);
  // Disconnects the worker from our side; returns its stream, to be closed outside the lock.
  std::shared_ptr<WorkerChannel> Detach(WorkerState& worker);

  // A message arrived: the worker is up, so it stays registered. Nothing more: neither a
  // heartbeat nor a message that is not progress extends a lease.
  void Heard(WorkerState& worker, int64_t now_ms);
  // Real progress on a batch it holds (the batch ledger decides what counts). True when
  // the stored leases are to be extended now: at most once per tenth of a lease
  // (extending is a write).
  bool Progressed(WorkerState& worker, int64_t now_ms);
  // A batch was given to the worker; one that held nothing starts its progress clock now.
  void Assigned(WorkerState& worker, bool held_nothing, int64_t now_ms);
  // Connected workers heard from longer than a lease ago.
  std::vector<WorkerState*> Silent(int64_t now_ms);
  // Forgets disconnected workers unheard for longer than `retention_ms`; returns their ids.
  std::vector<std::string> Forget(int64_t now_ms, int64_t retention_ms);
  // Whether a connected worker serves the model.
  bool Serves(const std::string& model) const;
  // "" when a connected worker serving the key's model has the ControlNets and IP-Adapter it
  // names (or none serves the model: Serves says so), else what the first of them lacks.
  std::string Lacks(const BatchKey& key) const;
  // A batch's result: its images count, and the worker's rate follows their time.
  void RecordImages(WorkerState& worker, int done, double total_ms);
  // The memory a batch of this shape peaked at: the worker's memory model learns it.
  void RecordPeak(WorkerState& worker, uint64_t peak_bytes, int batch_size, int width, int height);

  // A batch of invalid results from the worker. Strikes count against its credential when it
  // has one, so reconnecting under a new id starts neither the count nor the quarantine
  // afresh. True when this strike quarantines it.
  bool StrikeInvalid(const std::string& worker_id, int64_t now_ms);
  // A batch of valid results: the count starts again.
  void ClearInvalid(const std::string& worker_id);

  Quarantine& quarantine() { return quarantine_; }
  const WorkerRules& rules() const { return rules_; }
  std::map<std::string, WorkerState>& all() { return workers_; }

 private:
  std::string QuarantineKey(const std::string& worker_id);

  WorkerRules rules_;
  Quarantine quarantine_;  // by worker id, or by "token NAME" / "certificate SUBJECT" / "host HOST"
  std::map<std::string, WorkerState> workers_;
  std::unordered_map<WorkerChannel*, std::string> by_channel_;  // connected workers
};

}  // namespace spriteforge::coordinator
