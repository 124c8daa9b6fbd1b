#include "service/worker_session.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace spriteforge::worker {

v1::MemoryReport MemoryReportOf(const engine::MemoryStats& stats, uint64_t reserve_bytes) {
  v1::MemoryReport m;
  m.set_total_bytes(stats.total_bytes);
  m.set_free_bytes(stats.free_bytes);
  m.set_weights_bytes(stats.weights_bytes);
  m.set_peak_allocated_bytes(stats.peak_allocated_bytes);
  m.set_peak_reserved_bytes(stats.peak_reserved_bytes);
  const uint64_t usable = stats.free_bytes + stats.weights_bytes;
  m.set_budget_bytes(usable > reserve_bytes ? usable - reserve_bytes : 0);
  return m;
}

namespace {

// The stream's writer side, shared by the three threads.
class Writer {
 public:
  explicit Writer(grpc::ClientReaderWriter<v1::WorkerMessage, v1::CoordinatorMessage>* stream) : stream_(stream) {}
  bool Write(const v1::WorkerMessage& message) {
    std::lock_guard<std::mutex> lock(mu_);
    return stream_->Write(message);
  }

 private:
  std::mutex mu_;
  grpc::ClientReaderWriter<v1::WorkerMessage, v1::CoordinatorMessage>* stream_;
};

}  // namespace

absl::Status WorkerSession::Run(std::atomic<bool>* registered, const std::atomic<bool>& stop) {
  auto stub = v1::WorkerGateway::NewStub(channel_);
  grpc::ClientContext context;
  auto stream = stub->Connect(&context);
  Writer writer(stream.get());

  v1::WorkerMessage hello;
  v1::Register* reg = hello.mutable_register_();
  const engine::DeviceInfo device = engine_->Device();
  reg->set_worker_id(identity_.worker_id);
  reg->set_device_name(device.name);
  reg->set_compute_capability(device.compute_capability);
  reg->set_unified_memory(device.unified_memory);
  *reg->mutable_memory() = MemoryReportOf(engine_->Memory(), identity_.reserve_bytes);
  reg->add_models(identity_.model_name);
  reg->set_max_batch(identity_.max_batch);
  reg->set_version("spriteforge 0.1.0");
  for (const v1::Calibration& c : identity_.calibrations) *reg->add_calibrations() = c;
  if (!writer.Write(hello)) {
    return absl::UnavailableError(absl::StrCat("cannot reach the coordinator: ", stream->Finish().error_message()));
  }

  // Assignments queue for the runner thread; cancels flag the batch in flight.
  std::mutex mu;
  std::condition_variable cv;
  std::deque<v1::Assignment> queue;
  std::string running_batch;
  std::atomic<bool> cancel_running{false};
  bool ending = false;
  int heartbeat_ms = 1000;

  std::thread runner([&] {
    while (true) {
      v1::Assignment assignment;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return ending || !queue.empty(); });
        if (ending) return;
        assignment = std::move(queue.front());
        queue.pop_front();
        running_batch = assignment.batch_id();
        cancel_running = false;
      }
      spdlog::info("batch {}: {} images", assignment.batch_id(), assignment.items_size());
      BatchOutcome outcome = runner_.Run(
          assignment,
          [&](int step, int total) {
            v1::WorkerMessage progress;
            progress.mutable_progress()->set_batch_id(assignment.batch_id());
            progress.mutable_progress()->set_step(step);
            progress.mutable_progress()->set_total_steps(total);
            writer.Write(progress);
          },
          cancel_running);
      v1::WorkerMessage done;
      if (outcome.ok) {
        *done.mutable_result() = std::move(outcome.result);
      } else {
        spdlog::warn("batch {} failed: {}", assignment.batch_id(), outcome.failure.message());
        *done.mutable_failure() = std::move(outcome.failure);
        *done.mutable_failure()->mutable_memory() = MemoryReportOf(engine_->Memory(), identity_.reserve_bytes);
      }
      writer.Write(done);
      std::lock_guard<std::mutex> lock(mu);
      running_batch.clear();
    }
  });

  std::thread heartbeat([&] {
    std::unique_lock<std::mutex> lock(mu);
    while (!ending) {
      cv.wait_for(lock, std::chrono::milliseconds(heartbeat_ms));
      if (ending) return;
      if (stop) {  // asked to stop: close our side, which ends the read loop below
        lock.unlock();
        context.TryCancel();
        lock.lock();
        continue;
      }
      v1::WorkerMessage beat;
      *beat.mutable_heartbeat()->mutable_memory() = MemoryReportOf(engine_->Memory(), identity_.reserve_bytes);
      if (!running_batch.empty()) beat.mutable_heartbeat()->add_running_batches(running_batch);
      lock.unlock();
      writer.Write(beat);
      lock.lock();
    }
  });

  v1::CoordinatorMessage incoming;
  while (stream->Read(&incoming)) {
    std::lock_guard<std::mutex> lock(mu);
    switch (incoming.msg_case()) {
      case v1::CoordinatorMessage::kRegistered:
        heartbeat_ms = std::max(100, incoming.registered().heartbeat_interval_ms());
        spdlog::info("registered as {} (model {})", incoming.registered().worker_id(), identity_.model_name);
        if (registered) *registered = true;
        break;
      case v1::CoordinatorMessage::kAssignment:
        queue.push_back(incoming.assignment());
        cv.notify_all();
        break;
      case v1::CoordinatorMessage::kCancel:
        if (running_batch == incoming.cancel().batch_id()) {
          spdlog::info("batch {}: cancel requested", running_batch);
          cancel_running = true;
        }
        for (auto it = queue.begin(); it != queue.end();) {
          it = it->batch_id() == incoming.cancel().batch_id() ? queue.erase(it) : it + 1;
        }
        break;
      default:
        break;
    }
  }
  // The stream is gone: whatever runs now cannot be delivered, so stop it between steps.
  {
    std::lock_guard<std::mutex> lock(mu);
    ending = true;
    cancel_running = true;
    queue.clear();
  }
  cv.notify_all();
  runner.join();
  heartbeat.join();
  const grpc::Status status = stream->Finish();
  if (stop) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat("stream to the coordinator ended: ",
                                             status.ok() ? "closed" : status.error_message()));
}

}  // namespace spriteforge::worker
