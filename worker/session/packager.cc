#include "worker/session/packager.h"

#include <algorithm>
#include <utility>

#include "spdlog/spdlog.h"

namespace spriteforge::worker {
namespace {

int EncodeThreads(int requested) {
  if (requested > 0) return requested;
  return static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 16u));
}

}  // namespace

Packager::Packager(const BatchRunner* runner, BatchStages* stages, SendQueue* send, MemoryProbe memory,
                   int encode_threads)
    : runner_(runner),
      stages_(stages),
      send_(send),
      memory_(std::move(memory)),
      pool_(EncodeThreads(encode_threads), ThreadPriority::kBackground),
      thread_([this] { Loop(); }) {}

void Packager::Join() {
  if (thread_.joinable()) thread_.join();
}

void Packager::Loop() {
  while (std::optional<RenderedBatch> batch = stages_->StartPackaging()) {
    send_->Post(Package(std::move(*batch)));
    stages_->FinishPackaging();
  }
}

v1::WorkerMessage Packager::Package(RenderedBatch batch) {
  BatchOutcome outcome = runner_->Package(batch.assignment, std::move(batch.rendered), &pool_);
  if (!outcome.ok) return FailureMessage(std::move(outcome.failure), memory_());
  spdlog::debug("batch {}: packaged in {:.0f} ms", batch.assignment.batch_id(), outcome.result.package_ms());
  v1::WorkerMessage message;
  *message.mutable_result() = std::move(outcome.result);
  return message;
}

}  // namespace spriteforge::worker
