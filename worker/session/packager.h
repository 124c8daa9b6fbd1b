// The session's packager: encodes a rendered batch's PNGs and sprites on a thread pool and
// sends the result, while the renderer is already on the next batch.
#pragma once

#include <thread>

#include "common/thread_pool.h"
#include "worker/batch_runner.h"
#include "worker/memory_report.h"
#include "worker/session/batch_stages.h"
#include "worker/session/send_queue.h"

namespace spriteforge::worker {

class Packager {
 public:
  // Starts the thread; it stops once `stages` ends. `encode_threads`: 0 for one per core, up
  // to 16 (a 16-image batch in one round: the last batch's PNGs are a job's tail), all at
  // background priority beside the thread that feeds the GPU.
  Packager(const BatchRunner* runner, BatchStages* stages, SendQueue* send, MemoryProbe memory, int encode_threads);
  ~Packager() { Join(); }
  Packager(const Packager&) = delete;
  Packager& operator=(const Packager&) = delete;

  void Join();

 private:
  void Loop();
  // The result of `batch`, or its failure with the memory at the time.
  v1::WorkerMessage Package(RenderedBatch batch);

  const BatchRunner* runner_;
  BatchStages* stages_;
  SendQueue* send_;
  MemoryProbe memory_;
  ThreadPool pool_;
  std::thread thread_;  // last: starts once the rest is ready
};

}  // namespace spriteforge::worker
