// The path of a worker's results from its stream to the store. With threads, a result
// leaves the gRPC thread at once: checker threads decode-check every image (the costly
// part: milliseconds per megapixel) and stage its files, a result's images side by side
// (a job's last batch is waited for, so its images should not queue behind each other);
// one committer takes everything staged so far, syncs the output file system once for all
// of it and hands the whole group to the core, which records it in one transaction (group
// commit); the files are renamed into place inside that transaction, after its fence check
// (PlaceResultFiles), so a leader fenced by a takeover never replaces the new leader's files.
// Without threads the same steps run in the caller, one result at a time.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/thread_pool.h"
#include "coordinator/core/results.h"
#include "coordinator/store/store.h"
#include "spriteforge/v1/spriteforge.pb.h"

namespace spriteforge::coordinator {

namespace v1 = ::spriteforge::v1;

struct ResultWork {
  std::string batch_id;
  std::string worker_id;
  int batch_size = 0;
  std::string model;
  std::vector<ItemRecord> items;  // running under the batch when the result came
  std::set<std::string> postprocessed_jobs;  // those asking for sprites
  v1::BatchResultMsg result;
};

struct StagedItem {
  ItemRecord item;
  StagedFiles staged;
};

// A result after checks and staging, without its image bytes.
struct StagedResult {
  std::string batch_id;
  std::string worker_id;
  int batch_size = 0;
  double total_ms = 0;
  uint64_t peak_bytes = 0;
  std::vector<StagedItem> written;  // synced; renamed into place inside the commit
  std::string storage_error;        // an item could not be stored
  std::map<std::pair<std::string, int>, std::string> storage_errors;  // (job, index) -> its own file's error
  std::string invalid_error;        // an item's image failed the checks
};

// The store's PlaceResults for the group's written items, in order (result by result): an
// accepted item's files are renamed into place before the deadline, or it records a storage
// error; one not accepted (cancelled, reassigned, a late duplicate) only loses its temporary
// files, never touching the names a recorded result may hold.
Store::PlaceResults PlaceResultFiles(std::vector<StagedResult>& group);
// Removes the temporary files of items never placed (a store that failed before placing).
void DiscardUnplaced(const std::vector<StagedResult>& group);

class ResultPipeline {
 public:
  // Records a group of results; called from the committer (or the caller without threads).
  using Commit = std::function<void(std::vector<StagedResult>& group)>;
  // Told how long each phase took: "check" per result, "sync" and "record" per group.
  using Observe = std::function<void(const std::string& phase, double seconds)>;

  // `checkers` 0: everything in the caller of Submit. Submit waits while more than
  // `max_waiting_bytes` of images wait for checks.
  ResultPipeline(std::string output_dir, int checkers, size_t max_waiting_bytes, Commit commit,
                 Observe observe = nullptr);
  ~ResultPipeline();  // records what it holds, then stops

  void Submit(ResultWork work);

 private:
  StagedResult Stage(ResultWork& work);  // timed as "check"
  void SyncAndCommit(std::vector<StagedResult>& group);  // timed as "sync" and "record"
  // One image of a result: checked, and its files staged (or why not).
  struct ItemOutcome;
  ItemOutcome StageItem(const ResultWork& work, const v1::ItemResult& r) const;
  void Publish(std::vector<StagedResult>& group);
  void CheckLoop();
  void CommitLoop();

  const std::string output_dir_;
  const size_t max_waiting_bytes_;
  Commit commit_;
  Observe observe_;
  std::mutex mu_;
  std::condition_variable work_cv_, room_cv_, staged_cv_;
  std::deque<ResultWork> waiting_;
  size_t waiting_bytes_ = 0;
  int checking_ = 0;
  std::vector<StagedResult> staged_;
  bool stopping_ = false;
  std::vector<std::thread> checkers_;      // background priority, like item_pool_
  std::unique_ptr<ThreadPool> item_pool_;  // a result's images, checked and staged in parallel
  std::thread committer_;
};

}  // namespace spriteforge::coordinator
