// Side effects on gRPC objects (sending to a worker, closing its stream, feeding a job's
// watchers), run in order on one thread of their own. The coordinator posts them while it
// holds its lock and never runs them there, because gRPC may run reactions inline in the
// calling thread. Its queue's mutex is a leaf: nothing is called while it is held.
#pragma once

#include <functional>

#include "common/thread_pool.h"

namespace spriteforge::coordinator {

class Outbox {
 public:
  // Runs what was posted, then stops (on destruction).
  void Post(std::function<void()> action) { thread_.Post(std::move(action)); }

 private:
  ThreadPool thread_{1};  // one thread: actions run in the order posted
};

}  // namespace spriteforge::coordinator
