// The parameters of one generated image, in the two forms that travel with the image: a
// JSON sidecar and the A1111-style "parameters" PNG text chunk that image tools read. Both
// are written from the API's messages (model, v1::ImageParams, v1::SamplingParams).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "spriteforge/v1/spriteforge.pb.h"

namespace spriteforge {

// "prompt <lora:name:0.75>\nNegative prompt: ...\nSteps: 30, Sampler: Euler a, Schedule
// type: Karras, CFG scale: 5, Seed: 42, Size: 1024x1024, Model: sdxl, Denoising strength: 0.6",
// then ", ControlNet 0: \"...\"" for each unit of ControlNetUnits.
std::string FormatParametersText(const std::string& model, const v1::ImageParams& image,
                                 const v1::SamplingParams& sampling);

// The ControlNets, then the IP-Adapter, as A1111's ControlNet extension writes its units in
// the infotext (quoted): "Module: none, Model: NAME [SHA8], Weight: 0.8, Resize Mode: Crop and
// Resize, Low Vram: False, Guidance Start: 0.0, Guidance End: 1.0, Pixel Perfect: False,
// Control Mode: Balanced". Canny edges: Module canny with Threshold A/B (low/high); the
// IP-Adapter: Module ip-adapter_clip_sdxl_plus_vith for ViT-H files (vit-h in the name), else
// ip-adapter_clip_sdxl. [SHA8]: the first 8 hex digits of an uploaded file's SHA-256; a file
// from a worker's folder (or spriteforge-generate's path) has the name alone.
std::vector<std::string> ControlNetUnits(const v1::ImageParams& image, const v1::SamplingParams& sampling);

// {"prompt", "negative" (null when unset), "seed", "width", ..., "sampler": "euler", ...}; with controls
// "controlnets": [{name, sha256, scale, start, end, control: {image_sha256 | pose | pose_sha256 |
// canny}}] and "ip_adapter": {name, sha256, encoder, scale, reference_sha256: [...]}.
nlohmann::json ToJson(const std::string& model, const v1::ImageParams& image, const v1::SamplingParams& sampling);

}  // namespace spriteforge
