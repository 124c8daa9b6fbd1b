// Runs one assignment on the engine in two parts: Render (the GPU's part: text encoding,
// sampling, decode) and Package (the CPU's part: PNG encoding, sprites, the result
// message). The worker session runs Package of batch N on a thread pool while Render of
// batch N+1 keeps the GPU busy. Kept free of gRPC calls so tests drive it directly.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "common/png.h"
#include "spriteforge/engine/engine.h"
#include "worker/engine/adapter/engine_request.h"
#include "spriteforge/v1/spriteforge.pb.h"

namespace spriteforge {
class ThreadPool;
}  // namespace spriteforge

namespace spriteforge::worker {

namespace v1 = ::spriteforge::v1;

class BlobCache;

// Where a batch's files come from: LoRAs named by the job in `lora_dir`, uploaded LoRAs
// and start images from `blobs`. Either missing: jobs that need it fail with a clear message.
struct InputFiles {
  std::string lora_dir;
  BlobCache* blobs = nullptr;
  std::string controlnet_dir;  // ControlNets by name: <name>/ (diffusers) or <name>.safetensors
  std::string ip_adapter_dir;  // <name>.safetensors adapters and encoder folders (image_encoder/)
  // Where uploaded diffusers models become folders the engine loads (links to the cached
  // files under the names the engine expects); empty: <cache>/models beside the blobs.
  std::string model_dir;
};

// The worker's outgoing message for a finished batch: a result or a failure.
struct BatchOutcome {
  bool ok = false;
  v1::BatchResultMsg result;
  v1::BatchFailure failure;
};

// What the engine made for one assignment, not yet encoded.
struct Rendered {
  bool ok = false;
  BatchOutcome failure;  // when !ok
  engine::BatchResult batch;
  int64_t start_unix_ms = 0;
  int64_t end_unix_ms = 0;
};

// Previews of a batch's images during sampling, ready to send (the items that asked for one
// at this step).
using PreviewSink = std::function<void(v1::BatchPreview preview)>;

// Turns a render into PNG bytes (with its text chunks). Replaceable so tests can stand in
// a slow encoder; the worker uses EncodePng.
using ImageEncoder = std::function<absl::StatusOr<std::string>(const RasterImage&, const PngText&)>;

class BatchRunner {
 public:
  BatchRunner(engine::Engine* engine, std::string model_name, ImageEncoder encoder = nullptr, InputFiles files = {});

  // `on_step` is called after every sampling step; `cancel` is checked between steps.
  // `on_preview` gets the previews of items with a preview_every, on the engine's thread.
  Rendered Render(const v1::Assignment& assignment, const std::function<void(int, int)>& on_step,
                  const std::atomic<bool>& cancel, const PreviewSink& on_preview = nullptr);

  // Encodes every image (in parallel on `pool` when given) and builds the result message.
  BatchOutcome Package(const v1::Assignment& assignment, Rendered rendered, ThreadPool* pool) const;

  // Render then Package on the calling thread.
  BatchOutcome Run(const v1::Assignment& assignment, const std::function<void(int, int)>& on_step,
                   const std::atomic<bool>& cancel);

 private:
  absl::StatusOr<std::string> LoraPath(const v1::LoraRef& lora) const;
  absl::StatusOr<engine::ConditioningFiles> ConditioningPaths(const v1::SamplingParams& sampling) const;
  // A folder holding the uploaded files under the names given (links into the cache).
  absl::StatusOr<std::string> UploadedModelFolder(const std::vector<std::pair<std::string, std::string>>& files) const;
  absl::StatusOr<std::string> NamedPath(const std::string& dir, const char* flag, const std::string& what,
                                        const std::string& name, const char* suffix) const;
  absl::StatusOr<engine::RgbImage> InitImage(const std::string& sha256) const;

  engine::Engine* engine_;
  std::string model_name_;
  ImageEncoder encoder_;
  InputFiles files_;
};

// Wall-clock milliseconds since the epoch (the timestamps results carry).
int64_t UnixMs();

}  // namespace spriteforge::worker
