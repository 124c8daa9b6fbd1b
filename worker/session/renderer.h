// The session's renderer: runs the engine on one batch after another (the coordinator keeps
// one queued ahead) and says "rendered" as soon as the GPU part is done, so the coordinator
// can send the next one while the packager encodes this one.
#pragma once

#include <thread>

#include "worker/batch_runner.h"
#include "worker/memory_report.h"
#include "worker/session/batch_stages.h"
#include "worker/session/send_queue.h"

namespace spriteforge::worker {

class Renderer {
 public:
  // Starts the thread; it stops once `stages` ends.
  Renderer(BatchRunner* runner, BatchStages* stages, SendQueue* send, MemoryProbe memory);
  ~Renderer() { Join(); }
  Renderer(const Renderer&) = delete;
  Renderer& operator=(const Renderer&) = delete;

  void Join();

 private:
  void Loop();
  // Renders `assignment`, reporting steps, previews and the outcome; nullopt if it failed.
  std::optional<RenderedBatch> Render(v1::Assignment assignment);

  BatchRunner* runner_;
  BatchStages* stages_;
  SendQueue* send_;
  MemoryProbe memory_;
  std::thread thread_;  // last: starts once the rest is ready
};

}  // namespace spriteforge::worker
