#include "coordinator/tools/fleet_sim/event_loop.h"

namespace spriteforge::fleet {

EventLoop::EventLoop() : thread_([this] { Run(); }) {}

EventLoop::~EventLoop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void EventLoop::At(Clock::time_point when, std::function<void()> action) {
  bool earliest;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    earliest = events_.empty() || when < events_.top().when;
    events_.push(Event{when, next_seq_++, std::move(action)});
  }
  if (earliest) cv_.notify_one();
}

void EventLoop::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    if (events_.empty()) {
      cv_.wait(lock);
      continue;
    }
    const Clock::time_point due = events_.top().when;
    if (Clock::now() < due) {
      cv_.wait_until(lock, due);
      continue;
    }
    std::function<void()> action = std::move(const_cast<Event&>(events_.top()).action);
    events_.pop();
    lock.unlock();
    action();
    lock.lock();
  }
}

}  // namespace spriteforge::fleet
