// The API's image parameters (v1::SamplingParams, v1::ImageParams) as the engine's request:
// the one place they become engine types, used by the worker for its batches and by
// spriteforge-generate for its flags. Plain C++ and protobuf only, no LibTorch.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "spriteforge/engine/engine.h"
#include "spriteforge/v1/spriteforge.pb.h"

namespace spriteforge::engine {

// The files of a batch's ControlNets and IP-Adapter, found by the caller like LoRAs:
// `controlnets[i]` for `sampling.controlnets(i)` (a folder or .safetensors the engine
// loads), the adapter's file and its encoder's folder when `sampling.ip_adapter` is set.
struct ConditioningFiles {
  std::vector<std::string> controlnets;
  std::string ip_adapter;
  std::string encoder_dir;
};

// The API's sampler and schedule as the engine's, value for value (not by name): the
// unspecified value, or one this build's engine lacks, is an error.
absl::StatusOr<SamplerKind> ToEngineSampler(v1::Sampler sampler);
absl::StatusOr<ScheduleKind> ToEngineSchedule(v1::Schedule schedule);

// `lora_paths[i]` is the file of `sampling.loras(i)` (found by the caller: a worker's cache
// or LoRA folder, the command line's own path). The request has no images yet.
absl::StatusOr<BatchRequest> ToEngineRequest(const v1::SamplingParams& sampling,
                                             const std::vector<std::string>& lora_paths,
                                             const ConditioningFiles& conditioning = {});

// The local path of an uploaded file, by sha256 (a worker's cache).
using BlobPath = std::function<absl::StatusOr<std::string>(const std::string& sha256)>;

// An image's control images at the batch's size, one per ControlImage: uploaded PNGs
// resized (control/resize.h: same aspect ratio only), poses drawn (a built-in pose by
// name, or the first pose of an uploaded pose file), Canny edges of an uploaded PNG.
absl::StatusOr<std::vector<RgbImage>> ControlImagesOf(const v1::ImageParams& image, int width, int height,
                                                      const BlobPath& blob_path);
// An image's reference images, decoded as they are (the engine resizes them).
absl::StatusOr<std::vector<RgbImage>> ReferenceImagesOf(const v1::ImageParams& image, const BlobPath& blob_path);

// `init_image`: the decoded start image the image names, if any.
ImageRequest ToEngineImage(const v1::ImageParams& image, std::optional<RgbImage> init_image);

}  // namespace spriteforge::engine
