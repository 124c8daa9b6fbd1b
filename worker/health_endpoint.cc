#include "worker/health_endpoint.h"

#include <httplib.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace spriteforge::worker {

namespace {

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void CountDelivered(const v1::BatchResultMsg& result, WorkerStatus* status) {
  int64_t unset = 0;
  status->first_result_ms.compare_exchange_strong(unset, SteadyMs());
  status->images += result.items_size();
  ++status->batches;
}

absl::Status Readiness(const WorkerStatus& status) {
  if (!status.model_loaded) return absl::UnavailableError("loading the model");
  if (!status.connected) return absl::UnavailableError("not connected to a coordinator");
  return absl::OkStatus();
}

namespace {

void Gauge(std::string* out, const char* name, const char* help, const std::string& labels, double value,
           const char* type = "gauge") {
  // %.15g: byte counts stay whole numbers (7000000000, not 7e+09).
  absl::StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n", name, "{", labels, "} ",
                  absl::StrFormat("%.15g", value), "\n");
}

}  // namespace

std::string WorkerMetricsText(const WorkerStatus& status, const std::string& worker_id, const EngineView& engine,
                              uint64_t resident_bytes) {
  const engine::MemoryStats& memory = engine.memory;
  const engine::DeviceInfo& device = engine.device;
  const std::string w = absl::StrCat("worker=\"", worker_id, "\"");
  std::string out;
  Gauge(&out, "spriteforge_worker_ready", "1 when the model is loaded and a coordinator accepted the worker", w,
        Readiness(status).ok() ? 1 : 0);
  Gauge(&out, "spriteforge_worker_model_loaded", "1 once the model is loaded", w, status.model_loaded ? 1 : 0);
  Gauge(&out, "spriteforge_worker_coordinator_connected", "1 while a coordinator session is open", w,
        status.connected ? 1 : 0);
  Gauge(&out, "spriteforge_worker_delivered_images_total", "Images this process delivered to coordinators", w,
        static_cast<double>(status.images), "counter");
  Gauge(&out, "spriteforge_worker_delivered_batches_total", "Batches this process delivered to coordinators", w,
        static_cast<double>(status.batches), "counter");
  const int64_t first = status.first_result_ms;
  const double seconds = first > 0 ? (SteadyMs() - first) / 1000.0 : 0;
  Gauge(&out, "spriteforge_worker_delivered_images_per_second",
        "Images delivered per second since the first result (rate() of the counter is the recent one)", w,
        seconds > 1 ? status.images / seconds : 0);
  // The process's own memory, then the device's as the engine sees it. On unified memory
  // (device="...",unified="1") the device's free memory is the machine's available memory,
  // shared with every other process: the worker's own part is its resident memory plus the
  // device memory its allocator holds (driver memory, outside the resident set).
  Gauge(&out, "spriteforge_worker_process_resident_bytes", "Resident memory of this worker process", w,
        static_cast<double>(resident_bytes));
  const std::string d = absl::StrCat(w, ",device=\"", device.name, "\",unified=\"", device.unified_memory ? 1 : 0,
                                     "\"");
  Gauge(&out, "spriteforge_worker_device_reserved_bytes",
        "Device memory the engine's allocator holds now (0 on the CPU, where it is resident memory)", d,
        static_cast<double>(memory.reserved_bytes));
  Gauge(&out, "spriteforge_worker_weights_bytes", "Model weights the engine holds", d,
        static_cast<double>(memory.weights_bytes));
  Gauge(&out, "spriteforge_worker_device_peak_allocated_bytes", "Peak device allocation since the last batch began",
        d, static_cast<double>(memory.peak_allocated_bytes));
  Gauge(&out, "spriteforge_worker_device_total_bytes", "Device memory in total", d,
        static_cast<double>(memory.total_bytes));
  Gauge(&out, "spriteforge_worker_device_free_bytes",
        "Device memory free now (the machine's available memory on unified memory and CPUs)", d,
        static_cast<double>(memory.free_bytes));
  return out;
}

absl::StatusOr<std::pair<std::string, int>> ParseHealthAddress(const std::string& address) {
  const size_t colon = address.rfind(':');
  std::string host = colon == std::string::npos ? "127.0.0.1" : address.substr(0, colon);
  const std::string port_text = colon == std::string::npos ? address : address.substr(colon + 1);
  int port = -1;
  if (!absl::SimpleAtoi(port_text, &port) || port < 0 || port > 65535 || host.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("--http: expected PORT or HOST:PORT, got '", address, "'"));
  }
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return std::make_pair(host, port);
}

absl::StatusOr<std::unique_ptr<HealthEndpoint>> HealthEndpoint::Start(const std::string& address,
                                                                       const WorkerStatus* status,
                                                                       std::string worker_id, EngineProbe engine) {
  auto parsed = ParseHealthAddress(address);
  if (!parsed.ok()) return parsed.status();
  const auto& [host, port] = *parsed;
  std::unique_ptr<HealthEndpoint> endpoint(new HealthEndpoint());
  endpoint->server_ = std::make_unique<httplib::Server>();
  httplib::Server& server = *endpoint->server_;
  server.new_task_queue = [] { return new httplib::ThreadPool(2); };  // probes and a scraper
  server.Get("/healthz", [status](const httplib::Request&, httplib::Response& res) {
    const absl::Status ready = Readiness(*status);
    res.status = ready.ok() ? 200 : 503;
    res.set_content(ready.ok() ? "ok\n" : std::string(ready.message()) + "\n", "text/plain");
  });
  server.Get("/metrics", [status, worker_id, engine](const httplib::Request&, httplib::Response& res) {
    res.set_content(WorkerMetricsText(*status, worker_id, engine(), ProcessResidentBytes()),
                    "text/plain; version=0.0.4");
  });
  const int bound = port == 0 ? server.bind_to_any_port(host) : (server.bind_to_port(host, port) ? port : -1);
  if (bound < 0) {
    return absl::UnavailableError(absl::StrCat("--http: cannot listen on ", host, ":", port));
  }
  endpoint->port_ = bound;
  endpoint->thread_ = std::thread([s = &server] { s->listen_after_bind(); });
  // Running before Start returns, so that a stop right after cannot miss the listen loop.
  for (int i = 0; i < 1000 && !server.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return endpoint;
}

HealthEndpoint::~HealthEndpoint() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace spriteforge::worker
