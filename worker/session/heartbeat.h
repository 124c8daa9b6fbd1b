// The session's heartbeat: tells the coordinator the batches held and the memory, at the
// interval the coordinator asked for and whenever a batch changes stage. Also the thread
// that notices a stop asked from outside (a signal) and hangs up.
#pragma once

#include <atomic>
#include <functional>
#include <thread>

#include "worker/memory_report.h"
#include "worker/session/batch_stages.h"
#include "worker/session/send_queue.h"

namespace spriteforge::worker {

class Heartbeat {
 public:
  // Starts the thread; it stops once `stages` ends. `hang_up` closes our side of the
  // stream, which ends the session's read loop.
  Heartbeat(BatchStages* stages, SendQueue* send, MemoryProbe memory, const std::atomic<bool>& stop,
            std::function<void()> hang_up);
  ~Heartbeat() { Join(); }
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;

  // From the coordinator's Registered; at least 100 ms.
  void SetInterval(int interval_ms);
  void Join();

 private:
  void Loop();

  BatchStages* stages_;
  SendQueue* send_;
  MemoryProbe memory_;
  const std::atomic<bool>& stop_;
  std::function<void()> hang_up_;
  std::atomic<int> interval_ms_{1000};
  std::thread thread_;  // last: starts once the rest is ready
};

}  // namespace spriteforge::worker
