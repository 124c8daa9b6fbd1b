#include "common/thread_pool.h"

#include <algorithm>
#include <cerrno>

#if defined(__linux__)
#include <sys/resource.h>
#include <unistd.h>
#endif

namespace spriteforge {

// Linux's nice value is per thread (PRIO_PROCESS with a thread id); elsewhere a no-op.
void SetThisThreadPriority(ThreadPriority priority) {
  if (priority != ThreadPriority::kBackground) return;
#if defined(__linux__)
  const id_t tid = static_cast<id_t>(gettid());
  errno = 0;
  const int nice = getpriority(PRIO_PROCESS, tid);
  if (errno == 0) setpriority(PRIO_PROCESS, tid, std::min(19, nice + 10));
#endif
}

ThreadPool::ThreadPool(int threads, ThreadPriority priority) {
  for (int i = 0; i < std::max(1, threads); ++i) {
    threads_.emplace_back([this, priority] {
      SetThisThreadPriority(priority);
      while (true) {
        std::function<void()> task;
        {
          std::unique_lock<std::mutex> lock(mu_);
          cv_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
          if (tasks_.empty()) return;  // stopping and drained
          task = std::move(tasks_.front());
          tasks_.pop_front();
        }
        task();
      }
    });
  }
}

void ThreadPool::Post(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    tasks_.push_back(std::move(task));
  }
  cv_.notify_one();
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
}

}  // namespace spriteforge
