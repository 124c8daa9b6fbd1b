// The batches a session holds, by stage: queued (assigned, not started), rendering (one at a
// time on the engine), rendered and waiting for the packager, packaging. One lock over all
// stages, so a heartbeat lists each batch exactly once, and so the renderer takes the next
// batch only while the packager has room for it. The reader, renderer and packager hand
// batches on through this board; none of them keeps another's state.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "spriteforge/v1/spriteforge.pb.h"
#include "worker/batch_runner.h"

namespace spriteforge::worker {

// A batch the engine finished, handed from the renderer to the packager.
struct RenderedBatch {
  v1::Assignment assignment;
  Rendered rendered;
};

// What a cancel found.
struct CancelOutcome {
  bool was_rendering = false;  // the running render is flagged to stop between steps
  int dropped_queued = 0;      // queued copies removed: they need an answer now
};

class BatchStages {
 public:
  // `max_waiting_to_package`: rendered batches held before the renderer pauses, which bounds
  // host memory when encoding falls behind the GPU.
  explicit BatchStages(size_t max_waiting_to_package) : max_waiting_to_package_(max_waiting_to_package) {}

  // The reader's side.
  void Queue(v1::Assignment assignment);
  CancelOutcome Cancel(const std::string& batch_id);

  // The renderer's side: the next queued batch, once there is room to package it; nullopt
  // once ended. `cancel_rendering()` is checked by the engine between steps.
  std::optional<v1::Assignment> StartRendering();
  const std::atomic<bool>& cancel_rendering() const { return cancel_rendering_; }
  void FinishRendering(std::optional<RenderedBatch> rendered);  // nullopt: it failed

  // The packager's side: the oldest rendered batch; nullopt once ended.
  std::optional<RenderedBatch> StartPackaging();
  void FinishPackaging();

  // The heartbeat's side: waits up to `interval` or until a batch changes stage, then lists
  // every batch held; nullopt once ended.
  std::optional<std::vector<std::string>> AwaitBeat(std::chrono::milliseconds interval);

  // The stream is gone: what runs now cannot be delivered, so the render stops between
  // steps, queued batches go (the coordinator re-queues them) and every waiter returns.
  void End();

 private:
  std::vector<std::string> HeldLocked() const;

  const size_t max_waiting_to_package_;
  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<v1::Assignment> queued_;
  std::string rendering_;  // empty: none
  std::atomic<bool> cancel_rendering_{false};
  std::deque<RenderedBatch> to_package_;
  std::string packaging_;  // empty: none
  bool ended_ = false;
};

}  // namespace spriteforge::worker
