// The thread pool: the worker's PNG encoders (several threads, results through futures) and
// the coordinator's outbox (one thread, actions in the order posted, all run before it ends).
#include "common/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sys/resource.h>
#include <unistd.h>
#endif

namespace spriteforge {
namespace {

TEST(ThreadPoolTest, OneThreadRunsPostedActionsInOrderAndAllBeforeItEnds) {
  std::vector<int> ran;
  {
    ThreadPool outbox(1);
    for (int i = 0; i < 1000; ++i) {
      outbox.Post([&ran, i] {
        if (i == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the rest queue up behind
        ran.push_back(i);
      });
    }
  }  // destruction drains the queue
  ASSERT_EQ(ran.size(), 1000u);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(ran[i], i);
}

TEST(ThreadPoolTest, SubmittedTasksRunInParallelAndReturnTheirResults) {
  ThreadPool pool(4);
  EXPECT_EQ(pool.size(), 4);
  std::atomic<int> running{0}, most{0};
  std::vector<std::future<int>> results;
  for (int i = 0; i < 16; ++i) {
    results.push_back(pool.Submit([&, i] {
      const int now = ++running;
      for (int seen = most; now > seen && !most.compare_exchange_weak(seen, now);) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      --running;
      return i * i;
    }));
  }
  for (int i = 0; i < 16; ++i) EXPECT_EQ(results[i].get(), i * i);
  EXPECT_GT(most.load(), 1) << "the tasks never overlapped";
}

#if defined(__linux__)
TEST(ThreadPoolTest, BackgroundThreadsRunAtALowerPriorityThanTheirCreator) {
  const auto nice_of_this_thread = [] { return getpriority(PRIO_PROCESS, static_cast<id_t>(gettid())); };
  const int creator = nice_of_this_thread();
  ThreadPool background(2, ThreadPriority::kBackground);
  ThreadPool normal(1);
  EXPECT_EQ(background.Submit(nice_of_this_thread).get(), std::min(19, creator + 10));
  EXPECT_EQ(normal.Submit(nice_of_this_thread).get(), creator);
  EXPECT_EQ(nice_of_this_thread(), creator) << "the creating thread keeps its priority";
  int lowered = creator;
  std::thread([&] {
    SetThisThreadPriority(ThreadPriority::kBackground);
    lowered = nice_of_this_thread();
  }).join();
  EXPECT_EQ(lowered, std::min(19, creator + 10)) << "a thread of its own lowers itself the same way";
}
#endif

}  // namespace
}  // namespace spriteforge
