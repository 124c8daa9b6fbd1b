// The planner's view of the queue, kept between planning rounds: for each active job, a
// window of its first queued items (index and batch key), read from the store a chunk at a
// time as the window drains. Leased items leave the window; released ones come back. The
// store stays the truth; this holds at most a few hundred items per job, whatever the
// job's size, so planning neither reads nor holds the whole queue.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/scheduling/planner.h"
#include "coordinator/store/store.h"

namespace spriteforge::coordinator {

class JobQueues {
 public:
  // Reads a job's queued items with an index above `after`, by index, at most `limit`.
  using Loader = std::function<absl::StatusOr<std::vector<ItemRecord>>(const std::string& job_id, int after, int limit)>;

  // The batch key of an item.
  using KeyOf = std::function<BatchKey(const ItemRecord& item)>;

  // Whether a queued item must wait out of the window (it needs another item's result);
  // it is read again, and asked again, after Reset.
  using Holds = std::function<bool(const ItemRecord& item)>;

  // `low`: a window shorter than this is topped up by `chunk` items.
  JobQueues(Loader load, KeyOf key_of, size_t low = 64, int chunk = 256, Holds holds = nullptr)
      : load_(std::move(load)), key_of_(std::move(key_of)), low_(low), chunk_(chunk), holds_(std::move(holds)) {}

  void Add(const JobRecord& job);  // its items are read when first needed
  void Remove(const std::string& job_id);
  void Reset(const JobRecord& job);  // forgets its window; read again from the store
  void Take(const std::string& job_id, int index);  // leased
  void Requeue(const ItemRecord& item);             // back in the queue

  // Tops up short windows, then lists the jobs with queued items. The pointers stay valid
  // until the next call that changes this object.
  absl::StatusOr<std::vector<const QueuedJob*>> Jobs();
  const std::vector<BatchKey>& keys() const { return keys_; }

 private:
  struct Entry {
    QueuedJob view;
    int cursor = -1;         // every queued item above it is still only in the store
    bool exhausted = false;  // the store has nothing above the cursor
  };
  int KeyId(const BatchKey& key);

  Loader load_;
  KeyOf key_of_;
  size_t low_;
  int chunk_;
  Holds holds_;
  std::map<std::string, std::unique_ptr<Entry>> jobs_;
  std::vector<BatchKey> keys_;
  std::map<BatchKey, int> key_ids_;
};

}  // namespace spriteforge::coordinator
