#include "worker/session/heartbeat.h"

#include <algorithm>
#include <chrono>
#include <utility>

namespace spriteforge::worker {

Heartbeat::Heartbeat(BatchStages* stages, SendQueue* send, MemoryProbe memory, const std::atomic<bool>& stop,
                     std::function<void()> hang_up)
    : stages_(stages),
      send_(send),
      memory_(std::move(memory)),
      stop_(stop),
      hang_up_(std::move(hang_up)),
      thread_([this] { Loop(); }) {}

void Heartbeat::SetInterval(int interval_ms) { interval_ms_ = std::max(100, interval_ms); }

void Heartbeat::Join() {
  if (thread_.joinable()) thread_.join();
}

void Heartbeat::Loop() {
  while (std::optional<std::vector<std::string>> held =
             stages_->AwaitBeat(std::chrono::milliseconds(interval_ms_.load()))) {
    if (stop_) {
      hang_up_();
      continue;
    }
    v1::WorkerMessage beat;
    v1::Heartbeat* h = beat.mutable_heartbeat();
    for (std::string& id : *held) h->add_running_batches(std::move(id));
    *h->mutable_memory() = memory_();
    send_->Post(std::move(beat));
  }
}

}  // namespace spriteforge::worker
