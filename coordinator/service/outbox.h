// Side effects on gRPC objects (sending to a worker, closing its stream, feeding a job's
// watchers), run in order on one thread of their own. The coordinator posts them while it
// holds its lock and never runs them there, because gRPC may run reactions inline in the
// calling thread. Its own mutex is a leaf: nothing is called while it is held.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace spriteforge::coordinator {

class Outbox {
 public:
  Outbox();
  ~Outbox();  // runs what was posted, then stops

  void Post(std::function<void()> action);

 private:
  void Run();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> actions_;
  bool stopping_ = false;
  std::thread thread_;  // last: it starts on the members above
};

}  // namespace spriteforge::coordinator
