#include "worker/worker_session.h"

#include <grpcpp/grpcpp.h>

#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/cli.h"
#include "spdlog/spdlog.h"
#include "worker/session/batch_stages.h"
#include "worker/session/heartbeat.h"
#include "worker/session/packager.h"
#include "worker/session/renderer.h"
#include "worker/session/send_queue.h"
#include "worker/session/stream_reader.h"

namespace spriteforge::worker {

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

namespace {

// Rendered batches waiting for the packager before the renderer pauses: bounds host
// memory when encoding falls behind the GPU.
constexpr size_t kMaxWaitingToPackage = 2;

}  // namespace

v1::WorkerMessage WorkerSession::RegisterMessage() const {
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
  reg->set_version(absl::StrCat("spriteforge ", cli::Version()));
  for (const v1::Calibration& c : identity_.calibrations) *reg->add_calibrations() = c;
  // Listed at every connection, so files added to the folder since count in the planner;
  // their hashes (and the model's) come from the worker's remembered ones (model_files.h).
  FileHashes* hashes = identity_.file_hashes;
  *reg->add_model_files() = ModelFile(identity_.model_name, identity_.model_path, hashes);
  for (v1::LoraFile& f : ListLoraFolder(identity_.lora_dir, hashes)) *reg->add_lora_files() = std::move(f);
  // ControlNets: diffusers folders and single files (config.json beside them); IP-Adapters:
  // .safetensors files; image encoders: folders of --ip-adapter-dir.
  for (v1::LoraFile& f : ListModelFolders(identity_.controlnet_dir, hashes)) *reg->add_controlnet_files() = std::move(f);
  for (v1::LoraFile& f : ListLoraFolder(identity_.controlnet_dir, hashes)) *reg->add_controlnet_files() = std::move(f);
  for (v1::LoraFile& f : ListLoraFolder(identity_.ip_adapter_dir, hashes)) *reg->add_ip_adapter_files() = std::move(f);
  for (v1::LoraFile& f : ListModelFolders(identity_.ip_adapter_dir, hashes)) *reg->add_image_encoder_files() = std::move(f);
  if (hashes) {
    if (auto s = hashes->Save(); !s.ok()) spdlog::warn("file hashes not remembered: {}", std::string(s.message()));
  }
  return hello;
}

absl::Status WorkerSession::Run(std::atomic<bool>* registered, const std::atomic<bool>& stop) {
  auto stub = v1::WorkerGateway::NewStub(channel_);
  grpc::ClientContext context;
  auto stream = stub->Connect(&context);
  if (!stream->Write(RegisterMessage())) {
    return absl::UnavailableError(absl::StrCat("cannot reach the coordinator: ", stream->Finish().error_message()));
  }

  // The hand-offs first, so they outlive the threads that use them.
  SendQueue send([&stream, status = identity_.status](const v1::WorkerMessage& message) {
    const bool sent = stream->Write(message);
    if (sent && status && message.has_result()) CountDelivered(message.result(), status);
    return sent;
  });
  BatchStages stages(kMaxWaitingToPackage);
  const MemoryProbe memory = [this] { return MemoryReportOf(engine_->Memory(), identity_.reserve_bytes); };
  Renderer renderer(&runner_, &stages, &send, memory);
  Packager packager(&runner_, &stages, &send, memory, identity_.encode_threads);
  Heartbeat heartbeat(&stages, &send, memory, stop, [&context] { context.TryCancel(); });
  StreamReader reader(&stages, &send, [&](const v1::Registered& accepted) {
    heartbeat.SetInterval(accepted.heartbeat_interval_ms());
    spdlog::info("registered as {} (model {})", accepted.worker_id(), identity_.model_name);
    if (registered) *registered = true;
  });
  reader.ReadUntilEnd([&stream](v1::CoordinatorMessage* message) { return stream->Read(message); });

  // The stream is gone: whatever runs now cannot be delivered, so stop it between steps.
  stages.End();
  renderer.Join();
  packager.Join();
  heartbeat.Join();
  send.Close();
  return Ended(stream->Finish(), stop);
}

absl::Status WorkerSession::Ended(const grpc::Status& status, const std::atomic<bool>& stop) {
  if (stop) return absl::OkStatus();
  if (status.error_code() == grpc::StatusCode::ALREADY_EXISTS) {
    return absl::AlreadyExistsError(
        absl::StrCat(status.error_message(), " (a second worker on this device needs its own --worker-id)"));
  }
  return absl::UnavailableError(absl::StrCat("stream to the coordinator ended: ",
                                             status.ok() ? "closed" : status.error_message()));
}

}  // namespace spriteforge::worker
