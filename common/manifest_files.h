// The files a manifest may name (LoRAs, img2img start images), judged the same way by the
// client before it uploads them and by the coordinator before it accepts a job.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "common/manifest.h"

namespace spriteforge {

struct UploadLimits {
  uint64_t max_lora_bytes = 2ull << 30;
  uint64_t max_image_bytes = 32ull << 20;
  uint64_t max_weights_bytes = 8ull << 30;  // a full SDXL ControlNet in fp32 is 5 GB
  uint64_t max_config_bytes = 1ull << 20;
  uint64_t MaxBytes(ManifestFileKind kind) const {
    switch (kind) {
      case ManifestFileKind::kLora: return max_lora_bytes;
      case ManifestFileKind::kImage: return max_image_bytes;
      case ManifestFileKind::kWeights: return max_weights_bytes;
      case ManifestFileKind::kConfig: return max_config_bytes;
    }
    return 0;
  }
};

const char* KindName(ManifestFileKind kind);  // "LoRA" | "image" | "model" | "JSON file"
// Whether the kind's files are .safetensors (checked as they arrive).
inline bool IsSafetensorsKind(ManifestFileKind kind) {
  return kind == ManifestFileKind::kLora || kind == ManifestFileKind::kWeights;
}

// Hash, size and (images) pixel size of a file. Images must be 8-bit RGB PNGs, as the
// engine starts img2img from RGB; LoRAs and models must start like a .safetensors file and
// are hashed as they are read, never held in memory whole; JSON files must parse.
absl::StatusOr<ManifestFile> DescribeManifestFile(const std::string& path, ManifestFileKind kind,
                                                  const UploadLimits& limits = {});

// The same for an image held in memory (a request's inline picture), without a size limit
// (the caller's upload applies it).
absl::StatusOr<ManifestFile> DescribeImageBytes(const std::string& bytes);

// "" when `start` (the first bytes of a file, at least 9) can begin a .safetensors file.
std::string SafetensorsStartProblem(const std::string& start);

// A LoRA name as manifests give it: the stem, ".safetensors" dropped.
std::string LoraStem(const std::string& name);

}  // namespace spriteforge
