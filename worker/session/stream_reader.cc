#include "worker/session/stream_reader.h"

#include "spdlog/spdlog.h"

namespace spriteforge::worker {

void StreamReader::ReadUntilEnd(const Read& read) {
  v1::CoordinatorMessage incoming;
  while (read(&incoming)) Handle(incoming);
}

void StreamReader::Handle(const v1::CoordinatorMessage& message) {
  switch (message.msg_case()) {
    case v1::CoordinatorMessage::kRegistered:
      on_registered_(message.registered());
      break;
    case v1::CoordinatorMessage::kAssignment:
      stages_->Queue(message.assignment());
      break;
    case v1::CoordinatorMessage::kCancel:
      Cancel(message.cancel().batch_id());
      break;
    default:
      break;
  }
}

void StreamReader::Cancel(const std::string& batch_id) {
  const CancelOutcome found = stages_->Cancel(batch_id);
  if (found.was_rendering) spdlog::info("batch {}: cancel requested", batch_id);
  // A batch not started yet is answered at once, so the coordinator frees its items.
  for (int i = 0; i < found.dropped_queued; ++i) {
    v1::BatchFailure failure;
    failure.set_batch_id(batch_id);
    failure.set_reason(v1::FAILURE_CANCELLED);
    failure.set_message("cancelled before it started");
    send_->Post(FailureMessage(std::move(failure), v1::MemoryReport()));
  }
}

}  // namespace spriteforge::worker
