// One connection of a worker to the coordinator: register, then serve assignments on a
// runner thread while the calling thread reads the stream and a heartbeat thread reports
// memory. A broken stream cancels the batch in flight (the coordinator re-queues it) and
// returns, so the caller can reconnect with backoff.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "service/batch_runner.h"
#include "spriteforge/engine/engine.h"
#include "spriteforge/v1/spriteforge.grpc.pb.h"

namespace spriteforge::worker {

struct WorkerIdentity {
  std::string worker_id;       // stable for the life of the process
  std::string model_name;
  int max_batch = 8;
  uint64_t reserve_bytes = 0;  // kept free for the rest of the machine
  std::vector<v1::Calibration> calibrations;
};

// Memory the engine may use in total (weights included): free memory plus its own
// weights, less the reserve. On unified memory and CPUs "free" is the system's available.
v1::MemoryReport MemoryReportOf(const engine::MemoryStats& stats, uint64_t reserve_bytes);

class WorkerSession {
 public:
  WorkerSession(engine::Engine* engine, const WorkerIdentity& identity, std::shared_ptr<grpc::Channel> channel)
      : engine_(engine), identity_(identity), channel_(std::move(channel)), runner_(engine, identity.model_name) {}

  // Runs until the stream ends. `registered` is set once the coordinator accepted us.
  // `stop` ends the session from outside (signal handler).
  absl::Status Run(std::atomic<bool>* registered, const std::atomic<bool>& stop);

 private:
  engine::Engine* engine_;
  WorkerIdentity identity_;
  std::shared_ptr<grpc::Channel> channel_;
  BatchRunner runner_;
};

}  // namespace spriteforge::worker
