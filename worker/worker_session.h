// One connection of a worker to the coordinator: register, then keep the GPU busy. Four
// threads share the stream (worker/session/):
//   - the reader (the caller) queues assignments and cancels;
//   - the renderer runs the engine on one batch after another (the coordinator keeps one
//     queued ahead) and says "rendered" as soon as the GPU part is done;
//   - the packager encodes PNGs and sprites on a thread pool and sends the result, while
//     the renderer is already on the next batch;
//   - the heartbeat reports memory and the batches held.
// Batches pass between them through BatchStages; all writes go through a SendQueue thread,
// so neither the engine's step callback nor the packager ever waits on the network. A broken
// stream cancels what is in flight (the coordinator re-queues it) and returns, so the caller
// can reconnect with backoff.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "spriteforge/engine/engine.h"
#include "spriteforge/v1/spriteforge.grpc.pb.h"
#include "worker/batch_runner.h"
#include "worker/blob_cache.h"
#include "worker/health_endpoint.h"
#include "worker/memory_report.h"
#include "worker/model_files.h"

namespace spriteforge::worker {

struct WorkerIdentity {
  std::string worker_id;       // stable for the life of the process
  std::string model_name;
  std::string model_path;      // its --model (file, diffusers folder or builtin:*), for its hash
  int max_batch = 8;
  int prefetch = 1;            // batches held beyond the one rendering
  int encode_threads = 0;      // PNG encoding threads; 0: up to 8, one per core
  uint64_t reserve_bytes = 0;  // kept free for the rest of the machine
  std::vector<v1::Calibration> calibrations;
  std::string lora_dir;        // LoRAs manifests name (by file stem); empty: none
  std::string controlnet_dir;  // ControlNets manifests name (folder or file stem); empty: none
  std::string ip_adapter_dir;  // IP-Adapters (file stem) and image encoders (folder); empty: none
  std::string cache_dir;       // uploaded files fetched from the coordinator, by hash
  uint64_t cache_max_bytes = 0;  // the cache's bound (least recently used files go); 0: none
  WorkerStatus* status = nullptr;  // counts delivered results for the health endpoint; optional
  FileHashes* file_hashes = nullptr;  // the folders' files' SHA-256 for Register; null: none sent
};

// The id of a worker started without --worker-id: its host and device ("gpu1-cuda0",
// "build-cpu"), the same at every restart, so a restarted worker is the one the coordinator
// knew rather than one more. A second worker on the same device needs its own --worker-id:
// the coordinator refuses an id another connected worker holds.
std::string DefaultWorkerId(const std::string& host, const std::string& device);

// Fetches an uploaded file from the coordinator's worker gateway into `dest`.
absl::Status FetchBlob(const std::shared_ptr<grpc::Channel>& channel, const std::string& sha256,
                       const std::string& dest);

class WorkerSession {
 public:
  // `encoder`: how renders become PNG bytes (default EncodePng; tests stand in a slow one).
  WorkerSession(engine::Engine* engine, const WorkerIdentity& identity, std::shared_ptr<grpc::Channel> channel,
                ImageEncoder encoder = nullptr)
      : engine_(engine),
        identity_(identity),
        channel_(std::move(channel)),
        blobs_(identity.cache_dir,
               [channel = channel_](const std::string& sha256, const std::string& dest) {
                 return FetchBlob(channel, sha256, dest);
               },
               identity.cache_max_bytes),
        runner_(engine, identity.model_name, std::move(encoder),
                InputFiles{identity.lora_dir, &blobs_, identity.controlnet_dir, identity.ip_adapter_dir,
                           identity.cache_dir + "/models"}) {}

  // Runs until the stream ends. `registered` is set once the coordinator accepted us.
  // `stop` ends the session from outside (signal handler).
  absl::Status Run(std::atomic<bool>* registered, const std::atomic<bool>& stop);

 private:
  // Who we are, what we serve and the files we have, as the coordinator's planner needs them.
  v1::WorkerMessage RegisterMessage() const;
  // Why the session ended, as the caller reports it: nothing after a stop.
  static absl::Status Ended(const grpc::Status& status, const std::atomic<bool>& stop);

  engine::Engine* engine_;
  WorkerIdentity identity_;
  std::shared_ptr<grpc::Channel> channel_;
  BlobCache blobs_;
  BatchRunner runner_;
};

}  // namespace spriteforge::worker
