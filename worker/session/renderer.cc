#include "worker/session/renderer.h"

#include <utility>

#include "spdlog/spdlog.h"

namespace spriteforge::worker {

Renderer::Renderer(BatchRunner* runner, BatchStages* stages, SendQueue* send, MemoryProbe memory)
    : runner_(runner), stages_(stages), send_(send), memory_(std::move(memory)), thread_([this] { Loop(); }) {}

void Renderer::Join() {
  if (thread_.joinable()) thread_.join();
}

void Renderer::Loop() {
  while (std::optional<v1::Assignment> assignment = stages_->StartRendering()) {
    stages_->FinishRendering(Render(std::move(*assignment)));
  }
}

std::optional<RenderedBatch> Renderer::Render(v1::Assignment assignment) {
  spdlog::info("batch {}: {} images", assignment.batch_id(), assignment.items_size());
  Rendered rendered = runner_->Render(
      assignment,
      [&](int step, int total) {
        v1::WorkerMessage progress;
        progress.mutable_progress()->set_batch_id(assignment.batch_id());
        progress.mutable_progress()->set_step(step);
        progress.mutable_progress()->set_total_steps(total);
        send_->Post(std::move(progress));
      },
      stages_->cancel_rendering(),
      [&](v1::BatchPreview preview) {
        v1::WorkerMessage message;
        *message.mutable_preview() = std::move(preview);
        send_->Post(std::move(message));
      });
  if (!rendered.ok) {
    spdlog::warn("batch {} failed: {}", assignment.batch_id(), rendered.failure.failure.message());
    send_->Post(FailureMessage(std::move(rendered.failure.failure), memory_()));
    return std::nullopt;
  }
  v1::WorkerMessage done;
  done.mutable_rendered()->set_batch_id(assignment.batch_id());
  send_->Post(std::move(done));
  return RenderedBatch{std::move(assignment), std::move(rendered)};
}

}  // namespace spriteforge::worker
