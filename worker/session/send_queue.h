// The worker's messages to the coordinator, written in order by one thread of their own, so
// neither the engine's step callback nor the packager ever waits on the network.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "spriteforge/v1/spriteforge.pb.h"

namespace spriteforge::worker {

namespace v1 = ::spriteforge::v1;

class SendQueue {
 public:
  // Writes one message on the stream; false once the stream is broken.
  using Write = std::function<bool(const v1::WorkerMessage&)>;

  explicit SendQueue(Write write);
  ~SendQueue();  // Close()
  SendQueue(const SendQueue&) = delete;
  SendQueue& operator=(const SendQueue&) = delete;

  // Queues `message` behind the others. A step report or a preview replaces an older one of
  // the same batch still waiting: only the latest step matters, and a slow stream drops
  // stale previews instead of queueing them. Dropped once closed.
  void Post(v1::WorkerMessage message);

  // Writes what is queued (after a failed write, the rest goes unwritten), then stops.
  void Close();

 private:
  static bool Supersedes(const v1::WorkerMessage& newer, const v1::WorkerMessage& older);
  void Loop();

  Write write_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<v1::WorkerMessage> queue_;  // guarded by mu_
  bool closed_ = false;                  // guarded by mu_
  bool broken_ = false;                  // the writing thread's own
  std::thread thread_;                   // last: starts once the rest is ready
};

// A batch's failure as sent, with the engine's memory at the time.
v1::WorkerMessage FailureMessage(v1::BatchFailure failure, const v1::MemoryReport& memory);

}  // namespace spriteforge::worker
