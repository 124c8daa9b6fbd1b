// The API's image parameters (v1::SamplingParams, v1::ImageParams) as the engine's request:
// the one place they become engine types, used by the worker for its batches and by
// spriteforge-generate for its flags. Plain C++ and protobuf only, no LibTorch.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "spriteforge/engine/engine.h"
#include "spriteforge/v1/spriteforge.pb.h"

namespace spriteforge::engine {

// `lora_paths[i]` is the file of `sampling.loras(i)` (found by the caller: a worker's cache
// or LoRA folder, the command line's own path). The request has no images yet.
absl::StatusOr<BatchRequest> ToEngineRequest(const v1::SamplingParams& sampling,
                                             const std::vector<std::string>& lora_paths);

// `init_image`: the decoded start image the image names, if any.
ImageRequest ToEngineImage(const v1::ImageParams& image, std::optional<RgbImage> init_image);

}  // namespace spriteforge::engine
