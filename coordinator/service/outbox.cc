#include "coordinator/service/outbox.h"

namespace spriteforge::coordinator {

Outbox::Outbox() : thread_([this] { Run(); }) {}

Outbox::~Outbox() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Outbox::Post(std::function<void()> action) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    actions_.push_back(std::move(action));
  }
  cv_.notify_one();
}

void Outbox::Run() {
  while (true) {
    std::function<void()> action;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !actions_.empty(); });
      if (actions_.empty()) return;  // stopping and drained
      action = std::move(actions_.front());
      actions_.pop_front();
    }
    action();
  }
}

}  // namespace spriteforge::coordinator
