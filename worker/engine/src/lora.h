// LoRAs merged into the model's Linear weights: W' = W + sum_i strength_i * (alpha_i /
// rank_i) * up_i @ down_i. Merging costs nothing per step (the UNet runs as without a
// LoRA) and the touched layers' original weights are kept, so switching to another set
// puts them back bit for bit first: one loaded model serves jobs with different LoRAs.
#pragma once

#include <atomic>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "absl/status/statusor.h"
#include "spriteforge/engine/engine.h"
#include "worker/engine/src/checkpoint.h"
#include "worker/engine/src/layers.h"

namespace spriteforge::engine {

// One file's factors in float32 on the CPU, resolved to the model's layers.
struct LoraFile {
  struct Layer {
    LinearImpl* target;
    torch::Tensor down, up;  // [rank, in], [out, rank]
    double scale;            // alpha / rank
  };
  std::string path;
  std::vector<Layer> layers;
  uint64_t bytes = 0;  // of the factors as stored
};

// Every LoRA-addressable layer of the models by component and diffusers module name.
class LoraTargets {
 public:
  explicit LoraTargets(SdxlModels& models);
  // Reads and checks `path` (names, shapes); errors name the file and the tensor.
  absl::StatusOr<std::shared_ptr<const LoraFile>> Load(const std::string& path) const;

 private:
  SdxlModels& models_;
  std::map<std::pair<int, std::string>, LinearImpl*> linears_;
  std::vector<std::pair<int, std::string>> convs_;
};

// The LoRA set merged into the model now, with a cache of loaded files.
class LoraMerger {
 public:
  LoraMerger(SdxlModels& models, torch::Device device);

  // Makes `set` the merged one: nothing when it already is; otherwise restores the
  // original weights, then merges every file at its strength (files read once and
  // cached while unchanged on disk).
  absl::Status Activate(const std::vector<LoraSpec>& set);
  // Puts every touched weight back as it was loaded.
  void Restore();

  const std::vector<LoraSpec>& active() const { return active_; }
  // Bytes held for LoRAs: cached factors and the merged layers' saved originals. Safe to
  // read from any thread while another activates a set (the worker's heartbeat does).
  uint64_t cached_bytes() const { return cached_bytes_.load(std::memory_order_relaxed); }

 private:
  absl::StatusOr<std::shared_ptr<const LoraFile>> File(const std::string& path);
  // Recounts cached_bytes_ after cache_ or saved_ changed (only the activating thread).
  void Recount();

  LoraTargets targets_;
  torch::Device device_;
  std::vector<LoraSpec> active_;
  std::vector<std::shared_ptr<const LoraFile>> active_files_;
  std::map<LinearImpl*, LinearImpl::Saved> saved_;  // originals of the merged layers (SavedOriginalsPlace)
  struct Cached {
    std::shared_ptr<const LoraFile> file;
    int64_t size;
    int64_t mtime;
  };
  std::map<std::string, Cached> cache_;
  std::list<std::string> recent_;  // most recent first; the cache keeps kCacheFiles files
  std::atomic<uint64_t> cached_bytes_{0};
};

// Where a merge keeps the originals of the layers it changes (`bytes` of them): on the
// device when at least half of it stays free, otherwise on the host (pinned on a GPU's).
torch::Device SavedOriginalsPlace(const torch::Device& device, uint64_t bytes, const MemoryStats& memory);

}  // namespace spriteforge::engine
