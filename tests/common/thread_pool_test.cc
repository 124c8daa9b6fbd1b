// The thread pool: the worker's PNG encoders (several threads, results through futures) and
// the coordinator's outbox (one thread, actions in the order posted, all run before it ends).
#include "common/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>
#include <vector>

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

}  // namespace
}  // namespace spriteforge
