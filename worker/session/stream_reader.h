// The session's reader, on the caller's thread: takes the coordinator's messages off the
// stream until it ends, queueing assignments and answering cancels.
#pragma once

#include <functional>

#include "worker/session/batch_stages.h"
#include "worker/session/send_queue.h"

namespace spriteforge::worker {

class StreamReader {
 public:
  // Reads one message; false once the stream has ended.
  using Read = std::function<bool(v1::CoordinatorMessage*)>;
  using OnRegistered = std::function<void(const v1::Registered&)>;

  StreamReader(BatchStages* stages, SendQueue* send, OnRegistered on_registered)
      : stages_(stages), send_(send), on_registered_(std::move(on_registered)) {}

  // Handles every message until `read` says the stream ended.
  void ReadUntilEnd(const Read& read);
  void Handle(const v1::CoordinatorMessage& message);

 private:
  void Cancel(const std::string& batch_id);

  BatchStages* stages_;
  SendQueue* send_;
  OnRegistered on_registered_;
};

}  // namespace spriteforge::worker
