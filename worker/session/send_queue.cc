#include "worker/session/send_queue.h"

#include <utility>

namespace spriteforge::worker {

SendQueue::SendQueue(Write write) : write_(std::move(write)), thread_([this] { Loop(); }) {}

SendQueue::~SendQueue() { Close(); }

void SendQueue::Post(v1::WorkerMessage message) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
    if (message.has_progress() || message.has_preview()) {
      for (v1::WorkerMessage& waiting : queue_) {
        if (Supersedes(message, waiting)) {
          waiting = std::move(message);
          return;
        }
      }
    }
    queue_.push_back(std::move(message));
  }
  cv_.notify_one();
}

bool SendQueue::Supersedes(const v1::WorkerMessage& newer, const v1::WorkerMessage& older) {
  if (newer.has_progress()) return older.has_progress() && older.progress().batch_id() == newer.progress().batch_id();
  return older.has_preview() && older.preview().batch_id() == newer.preview().batch_id();
}

void SendQueue::Close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void SendQueue::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return closed_ || !queue_.empty(); });
    if (queue_.empty()) return;
    v1::WorkerMessage message = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    // A broken stream would fail each write at once; skipping them ends Close() sooner.
    broken_ = broken_ || !write_(message);
    lock.lock();
  }
}

v1::WorkerMessage FailureMessage(v1::BatchFailure failure, const v1::MemoryReport& memory) {
  v1::WorkerMessage message;
  *message.mutable_failure() = std::move(failure);
  *message.mutable_failure()->mutable_memory() = memory;
  return message;
}

}  // namespace spriteforge::worker
