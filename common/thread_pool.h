// A fixed set of threads running submitted tasks in order of submission. The worker uses
// it to encode a batch's PNGs in parallel while the engine renders the next batch; with one
// thread it runs tasks one after another in order (the coordinator's outbox).
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

namespace spriteforge {

// kBackground threads run at a lower scheduling priority (nice + 10 on Linux, per thread):
// bulk CPU work (PNG encoding, result checks) must not take cores from the thread that feeds
// the GPU, which sits in the same process or on the same host; idle cores still run it.
enum class ThreadPriority { kNormal, kBackground };

// Lowers the calling thread for kBackground (a no-op for kNormal, and where the system refuses).
void SetThisThreadPriority(ThreadPriority priority);

class ThreadPool {
 public:
  explicit ThreadPool(int threads, ThreadPriority priority = ThreadPriority::kNormal);
  ~ThreadPool();  // runs what was submitted, then joins
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  template <typename Fn>
  auto Submit(Fn fn) -> std::future<decltype(fn())> {
    auto task = std::make_shared<std::packaged_task<decltype(fn())()>>(std::move(fn));
    auto result = task->get_future();
    Post([task] { (*task)(); });
    return result;
  }
  // Fire and forget: nothing waits for the task's end.
  void Post(std::function<void()> task);

  int size() const { return static_cast<int>(threads_.size()); }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace spriteforge
