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
  uint64_t MaxBytes(ManifestFileKind kind) const {
    return kind == ManifestFileKind::kLora ? max_lora_bytes : max_image_bytes;
  }
};

const char* KindName(ManifestFileKind kind);  // "LoRA" | "image"

// Hash, size and (images) pixel size of a file. Images must be 8-bit RGB PNGs, as the
// engine starts img2img from RGB; LoRAs must start like a .safetensors file. LoRAs are
// hashed as they are read, never held in memory whole.
absl::StatusOr<ManifestFile> DescribeManifestFile(const std::string& path, ManifestFileKind kind,
                                                  const UploadLimits& limits = {});

// "" when `start` (the first bytes of a file, at least 9) can begin a .safetensors file.
std::string SafetensorsStartProblem(const std::string& start);

// A LoRA name as manifests give it: the stem, ".safetensors" dropped.
std::string LoraStem(const std::string& name);

}  // namespace spriteforge
