#include "common/thread_pool.h"
#include "worker/worker_session.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "absl/strings/ascii.h"
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

absl::Status FetchBlob(const std::shared_ptr<grpc::Channel>& channel, const std::string& sha256,
                       const std::string& dest) {
  auto stub = v1::WorkerGateway::NewStub(channel);
  grpc::ClientContext context;
  v1::BlobRequest request;
  request.set_sha256(sha256);
  auto reader = stub->FetchBlob(&context, request);
  std::ofstream out(dest, std::ios::binary | std::ios::trunc);
  v1::FileChunk chunk;
  while (reader->Read(&chunk)) out.write(chunk.data().data(), static_cast<std::streamsize>(chunk.data().size()));
  const grpc::Status status = reader->Finish();
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
  }
  out.close();
  if (!out) return absl::ResourceExhaustedError(absl::StrCat("cannot write ", dest, " (disk full?)"));
  return absl::OkStatus();
}

std::string DefaultWorkerId(const std::string& host, const std::string& device) {
  // Only what the coordinator accepts in an id: "cuda:1" becomes "cuda1".
  auto safe = [](const std::string& text) {
    std::string out;
    for (char c : text) {
      if (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-') out += c;
    }
    return out;
  };
  std::string dev = safe(device);
  if (dev == "cuda") dev = "cuda0";  // --device cuda is the first GPU
  std::string id = absl::StrCat(safe(host), "-", dev.empty() ? "cpu" : dev);
  while (!id.empty() && (id.front() == '.' || id.front() == '-')) id.erase(0, 1);
  return id.substr(0, 128);
}

std::vector<v1::LoraFile> ListLoraFolder(const std::string& dir) {
  std::vector<v1::LoraFile> out;
  if (dir.empty()) return out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (!e.is_regular_file(ec) || e.path().extension() != ".safetensors") continue;
    v1::LoraFile f;
    f.set_name(e.path().stem().string());
    f.set_size_bytes(e.file_size(ec));
    out.push_back(std::move(f));
  }
  return out;
}

std::vector<v1::LoraFile> ListModelFolders(const std::string& dir) {
  std::vector<v1::LoraFile> out;
  if (dir.empty()) return out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (!e.is_directory(ec) || !std::filesystem::is_regular_file(e.path() / "config.json", ec)) continue;
    v1::LoraFile f;
    f.set_name(e.path().filename().string());
    uint64_t bytes = 0;
    for (const auto& inner : std::filesystem::directory_iterator(e.path(), ec)) {
      if (inner.path().extension() == ".safetensors") bytes += inner.file_size(ec);
    }
    f.set_size_bytes(bytes);
    out.push_back(std::move(f));
  }
  return out;
}

namespace {

using Stream = grpc::ClientReaderWriter<v1::WorkerMessage, v1::CoordinatorMessage>;

// Rendered batches waiting for the packager before the renderer pauses: bounds host
// memory when encoding falls behind the GPU.
constexpr size_t kMaxWaitingToPackage = 2;

// Messages to the coordinator, written in order by one thread. A step report or a preview
// replaces an older one of the same batch still waiting: only the latest step matters, and
// a slow stream drops stale previews instead of queueing them.
class Outbox {
 public:
  explicit Outbox(Stream* stream) : stream_(stream), thread_([this] { Loop(); }) {}
  ~Outbox() { Close(); }

  void Post(v1::WorkerMessage message) {
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

  // Writes what is queued (a broken stream fails each write at once), then stops.
  static bool Supersedes(const v1::WorkerMessage& newer, const v1::WorkerMessage& older) {
    if (newer.has_progress()) return older.has_progress() && older.progress().batch_id() == newer.progress().batch_id();
    return older.has_preview() && older.preview().batch_id() == newer.preview().batch_id();
  }

  void Close() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      closed_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      cv_.wait(lock, [this] { return closed_ || !queue_.empty(); });
      if (queue_.empty()) return;
      v1::WorkerMessage message = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      const bool ok = !broken_ && stream_->Write(message);
      lock.lock();
      broken_ = broken_ || !ok;
    }
  }

  Stream* stream_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<v1::WorkerMessage> queue_;
  bool closed_ = false;
  bool broken_ = false;
  std::thread thread_;
};

v1::WorkerMessage FailureMessage(v1::BatchFailure failure, const v1::MemoryReport& memory) {
  v1::WorkerMessage message;
  *message.mutable_failure() = std::move(failure);
  *message.mutable_failure()->mutable_memory() = memory;
  return message;
}

}  // namespace

absl::Status WorkerSession::Run(std::atomic<bool>* registered, const std::atomic<bool>& stop) {
  auto stub = v1::WorkerGateway::NewStub(channel_);
  grpc::ClientContext context;
  auto stream = stub->Connect(&context);

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
  reg->set_prefetch(identity_.prefetch);
  reg->set_version("spriteforge 0.1.0");
  for (const v1::Calibration& c : identity_.calibrations) *reg->add_calibrations() = c;
  // Listed at every connection, so files added to the folder since count in the planner.
  for (v1::LoraFile& f : ListLoraFolder(identity_.lora_dir)) *reg->add_lora_files() = std::move(f);
  // ControlNets: diffusers folders and single files (config.json beside them); IP-Adapters:
  // .safetensors files; image encoders: folders of --ip-adapter-dir.
  for (v1::LoraFile& f : ListModelFolders(identity_.controlnet_dir)) *reg->add_controlnet_files() = std::move(f);
  for (v1::LoraFile& f : ListLoraFolder(identity_.controlnet_dir)) *reg->add_controlnet_files() = std::move(f);
  for (v1::LoraFile& f : ListLoraFolder(identity_.ip_adapter_dir)) *reg->add_ip_adapter_files() = std::move(f);
  for (v1::LoraFile& f : ListModelFolders(identity_.ip_adapter_dir)) *reg->add_image_encoder_files() = std::move(f);
  if (!stream->Write(hello)) {
    return absl::UnavailableError(absl::StrCat("cannot reach the coordinator: ", stream->Finish().error_message()));
  }

  Outbox outbox(stream.get());
  const int threads = identity_.encode_threads > 0
                          ? identity_.encode_threads
                          : static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 8u));
  ThreadPool pool(threads);

  // The batches this session holds, by stage. Guarded by mu.
  std::mutex mu;
  std::condition_variable cv;
  std::deque<v1::Assignment> queued;
  std::string rendering;
  std::atomic<bool> cancel_rendering{false};
  std::deque<std::pair<v1::Assignment, Rendered>> to_package;
  std::string packaging;
  bool ending = false;
  int heartbeat_ms = 1000;
  auto memory = [&] { return MemoryReportOf(engine_->Memory(), identity_.reserve_bytes); };

  std::thread renderer([&] {
    while (true) {
      v1::Assignment assignment;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return ending || (!queued.empty() && to_package.size() < kMaxWaitingToPackage); });
        if (ending) return;
        assignment = std::move(queued.front());
        queued.pop_front();
        rendering = assignment.batch_id();
        cancel_rendering = false;
      }
      spdlog::info("batch {}: {} images", assignment.batch_id(), assignment.items_size());
      Rendered rendered = runner_.Render(
          assignment,
          [&](int step, int total) {
            v1::WorkerMessage progress;
            progress.mutable_progress()->set_batch_id(assignment.batch_id());
            progress.mutable_progress()->set_step(step);
            progress.mutable_progress()->set_total_steps(total);
            outbox.Post(std::move(progress));
          },
          cancel_rendering,
          [&](v1::BatchPreview preview) {
            v1::WorkerMessage message;
            *message.mutable_preview() = std::move(preview);
            outbox.Post(std::move(message));
          });
      if (rendered.ok) {
        v1::WorkerMessage done;
        done.mutable_rendered()->set_batch_id(assignment.batch_id());
        outbox.Post(std::move(done));
      } else {
        spdlog::warn("batch {} failed: {}", assignment.batch_id(), rendered.failure.failure.message());
        outbox.Post(FailureMessage(std::move(rendered.failure.failure), memory()));
      }
      std::lock_guard<std::mutex> lock(mu);
      rendering.clear();
      if (rendered.ok) to_package.emplace_back(std::move(assignment), std::move(rendered));
      cv.notify_all();
    }
  });

  std::thread packager([&] {
    while (true) {
      std::pair<v1::Assignment, Rendered> next;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return ending || !to_package.empty(); });
        if (ending) return;
        next = std::move(to_package.front());
        to_package.pop_front();
        packaging = next.first.batch_id();
      }
      cv.notify_all();  // the renderer may wait for room
      BatchOutcome outcome = runner_.Package(next.first, std::move(next.second), &pool);
      v1::WorkerMessage message;
      if (outcome.ok) {
        spdlog::debug("batch {}: packaged in {:.0f} ms", next.first.batch_id(), outcome.result.package_ms());
        *message.mutable_result() = std::move(outcome.result);
      } else {
        message = FailureMessage(std::move(outcome.failure), memory());
      }
      outbox.Post(std::move(message));
      std::lock_guard<std::mutex> lock(mu);
      packaging.clear();
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
      v1::Heartbeat* h = beat.mutable_heartbeat();
      if (!rendering.empty()) h->add_running_batches(rendering);
      for (const v1::Assignment& a : queued) h->add_running_batches(a.batch_id());
      for (const auto& [a, r] : to_package) h->add_running_batches(a.batch_id());
      if (!packaging.empty()) h->add_running_batches(packaging);
      lock.unlock();
      *h->mutable_memory() = memory();
      outbox.Post(std::move(beat));
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
        queued.push_back(incoming.assignment());
        cv.notify_all();
        break;
      case v1::CoordinatorMessage::kCancel: {
        const std::string& id = incoming.cancel().batch_id();
        if (rendering == id) {
          spdlog::info("batch {}: cancel requested", id);
          cancel_rendering = true;
        }
        // A batch not started yet is answered at once, so the coordinator frees its items.
        for (auto it = queued.begin(); it != queued.end();) {
          if (it->batch_id() != id) {
            ++it;
            continue;
          }
          v1::BatchFailure failure;
          failure.set_batch_id(id);
          failure.set_reason(v1::FAILURE_CANCELLED);
          failure.set_message("cancelled before it started");
          outbox.Post(FailureMessage(std::move(failure), v1::MemoryReport()));
          it = queued.erase(it);
        }
        break;
      }
      default:
        break;
    }
  }
  // The stream is gone: whatever runs now cannot be delivered, so stop it between steps.
  {
    std::lock_guard<std::mutex> lock(mu);
    ending = true;
    cancel_rendering = true;
    queued.clear();
  }
  cv.notify_all();
  renderer.join();
  packager.join();
  heartbeat.join();
  outbox.Close();
  const grpc::Status status = stream->Finish();
  if (stop) return absl::OkStatus();
  if (status.error_code() == grpc::StatusCode::ALREADY_EXISTS) {
    return absl::AlreadyExistsError(
        absl::StrCat(status.error_message(), " (a second worker on this device needs its own --worker-id)"));
  }
  return absl::UnavailableError(absl::StrCat("stream to the coordinator ended: ",
                                             status.ok() ? "closed" : status.error_message()));
}

}  // namespace spriteforge::worker
