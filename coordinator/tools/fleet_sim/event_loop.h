// A single thread that runs timed actions in time order: the simulated GPUs' clocks. Actions
// due at the same moment run in the order they were scheduled.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <queue>
#include <thread>
#include <vector>

namespace spriteforge::fleet {

using Clock = std::chrono::steady_clock;

class EventLoop {
 public:
  EventLoop();
  ~EventLoop();  // drops what is still pending

  void At(Clock::time_point when, std::function<void()> action);
  void After(Clock::duration delay, std::function<void()> action) { At(Clock::now() + delay, std::move(action)); }

 private:
  struct Event {
    Clock::time_point when;
    uint64_t seq;
    std::function<void()> action;
    bool operator>(const Event& o) const { return when != o.when ? when > o.when : seq > o.seq; }
  };
  void Run();

  std::mutex mu_;
  std::condition_variable cv_;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> events_;
  uint64_t next_seq_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace spriteforge::fleet
