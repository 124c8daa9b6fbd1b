// The batch ledger: the assignments in flight (which worker holds which batch, with the
// items as they were leased) and the rules for what comes back: a worker's report counts
// only for a batch it still holds, a preview only for an item of that batch, and a failed
// batch's items count against their attempts only when the failure is theirs. Results
// that cannot be written pause dispatching (StoragePause). The store keeps the leases;
// this keeps what a result is checked against. Not thread-safe: used under the
// coordinator's lock.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "coordinator/scheduling/planner.h"
#include "coordinator/core/result_pipeline.h"
#include "coordinator/store/store.h"
#include "spriteforge/v1/spriteforge.pb.h"

namespace spriteforge::coordinator {

namespace v1 = ::spriteforge::v1;

struct BatchState {
  std::string id;
  std::string worker_id;
  BatchKey key;
  std::vector<ItemKey> items;
  std::vector<ItemRecord> records;  // as leased: what results are checked against
  int64_t started_ms = 0;
  int64_t last_step_ms = 0;
  bool rendered = false;  // the worker's GPU has finished it (it may still be encoding)
  int last_step = 0;      // the highest step reported: a step seen already is no progress
  int64_t renewed_ms = 0;  // its lease runs from here: dispatch, or its last real progress
  std::set<std::string> postprocessed_jobs;  // its jobs that asked for sprites
};

// How a failed batch's items are released.
struct ReleaseRule {
  bool items_fault = false;  // counts towards the items' attempts
  int max_attempts = 0;      // an item failing this often fails for good
};

class BatchLedger {
 public:
  // Worker loss, out of memory and cancellation are not the items' fault; an invalid
  // request fails at once; results that cannot be stored (a full disk) have a limit of
  // their own, long enough for an operator to free space.
  static ReleaseRule RuleFor(v1::FailureReason reason, int max_attempts, int storage_attempts);

  BatchState& Add(BatchState batch);
  BatchState* Find(const std::string& batch_id);
  // The batch while `worker_id` holds it; null once it was released or is another's, so
  // what a worker says about a batch it no longer holds does not count.
  BatchState* HeldBy(const std::string& worker_id, const std::string& batch_id);
  void Remove(const std::string& batch_id);

  // The worker's batches, in dispatch order.
  std::vector<std::string> BatchesOf(const std::string& worker_id) const;
  bool HoldsAny(const std::string& worker_id) const;
  // Batches the worker has not finished rendering; it takes more while below 1 + prefetch.
  int Unrendered(const std::string& worker_id) const;
  int RunningItems(const std::string& worker_id) const;

  // Leases run on real progress only. Progress on a batch renews it and the worker's
  // batches dispatched after it (they wait on it to render or to be packaged), never those
  // before it; what a worker says about a batch it does not hold renews nothing.
  // A step counts when it is above the last one seen and within the batch's steps.
  bool Stepped(const std::string& worker_id, const std::string& batch_id, int step, int64_t now_ms);
  // The worker finished rendering the batch; true (progress) the first time only.
  bool MarkRendered(const std::string& worker_id, const std::string& batch_id, int64_t now_ms);
  // Renews the held batch (a result came for it) and those behind it; false when not held.
  bool Renew(const std::string& worker_id, const std::string& batch_id, int64_t now_ms);
  // Batches without progress for more than a lease: their worker loses them.
  std::vector<std::string> Overdue(int64_t now_ms, int64_t lease_ms) const;

  // The result, with the items it is checked against; nullopt when the batch is no longer
  // the worker's (released meanwhile).
  std::optional<ResultWork> TakeResult(const std::string& worker_id, v1::BatchResultMsg result);
  // The batch's item a preview shows, when the preview is 1/8 of its size; null otherwise.
  static const ItemRecord* PreviewedItem(const BatchState& batch, const v1::PreviewImage& image);

 private:
  // What a worker holds, kept as batches come and go: planning asks it of every worker
  // in every round, so it is never counted by walking the batches.
  struct Holdings {
    std::vector<std::string> batch_ids;  // dispatch order
    int unrendered = 0;
    int items = 0;
  };

  std::map<std::string, BatchState> batches_;
  std::unordered_map<std::string, Holdings> by_worker_;
};

// Results that cannot be written (disk full) pause dispatching, doubling from 1 s up to
// 30 s, so workers do not render what cannot be stored; a write that succeeds resets the
// doubling.
class StoragePause {
 public:
  int64_t Failed(int64_t now_ms);  // returns the pause, in ms
  void Stored() { backoff_ms_ = 0; }
  bool Paused(int64_t now_ms) const { return now_ms < until_ms_; }

 private:
  int64_t until_ms_ = 0;
  int64_t backoff_ms_ = 0;
};

}  // namespace spriteforge::coordinator
