// The worker's own HTTP endpoint (--http): /healthz answers 200 once the model is loaded and
// a coordinator accepted the worker, 503 with the reason before that or while it reconnects;
// /metrics carries this process's memory and throughput in Prometheus' text format. Probes
// and scrapers on the same machine (or pod) use it; it listens on loopback unless told a host.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "spriteforge/engine/engine.h"
#include "spriteforge/v1/spriteforge.pb.h"
#include "worker/memory_report.h"  // ProcessResidentBytes

namespace httplib {
class Server;
}

namespace spriteforge::worker {

// What the worker's threads tell the endpoint; each field written by one place.
struct WorkerStatus {
  std::atomic<bool> model_loaded{false};  // set once the engine is loaded (and calibrated)
  std::atomic<bool> connected{false};     // a coordinator accepted us; cleared when the session ends
  std::atomic<uint64_t> images{0};        // images delivered to coordinators
  std::atomic<uint64_t> batches{0};
  std::atomic<int64_t> first_result_ms{0};  // steady clock, when the first result went out
};

// Counts a result the coordinator received: its images, one batch, the time of the first.
void CountDelivered(const v1::BatchResultMsg& result, WorkerStatus* status);

// Ready, or why not: "loading the model", "not connected to a coordinator".
absl::Status Readiness(const WorkerStatus& status);

// The engine as /metrics shows it; empty until the model is loaded.
struct EngineView {
  engine::MemoryStats memory;
  engine::DeviceInfo device;
};

// /metrics: the status, the engine's memory (device and weights) and the process's own RSS.
std::string WorkerMetricsText(const WorkerStatus& status, const std::string& worker_id, const EngineView& engine,
                              uint64_t resident_bytes);

// "PORT" or "HOST:PORT" to host and port; a bare port means loopback (127.0.0.1).
absl::StatusOr<std::pair<std::string, int>> ParseHealthAddress(const std::string& address);

class HealthEndpoint {
 public:
  using EngineProbe = std::function<EngineView()>;
  // Serves until destroyed. `address`: as ParseHealthAddress reads it (port 0: any free one).
  static absl::StatusOr<std::unique_ptr<HealthEndpoint>> Start(const std::string& address,
                                                               const WorkerStatus* status,
                                                               std::string worker_id, EngineProbe engine);
  ~HealthEndpoint();
  HealthEndpoint(const HealthEndpoint&) = delete;
  HealthEndpoint& operator=(const HealthEndpoint&) = delete;

  int port() const { return port_; }

 private:
  HealthEndpoint() = default;

  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace spriteforge::worker
