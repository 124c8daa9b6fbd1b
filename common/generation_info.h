// The parameters of one generated image, in the two forms that travel with the image: a
// JSON sidecar and the A1111-style "parameters" PNG text chunk that image tools read. Both
// are written from the API's messages (model, v1::ImageParams, v1::SamplingParams).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "spriteforge/v1/spriteforge.pb.h"

namespace spriteforge {

// "prompt <lora:name:0.75>\nNegative prompt: ...\nSteps: 30, Sampler: Euler a, Schedule
// type: Karras, CFG scale: 5, Seed: 42, Size: 1024x1024, Model: sdxl, Denoising strength: 0.6".
std::string FormatParametersText(const std::string& model, const v1::ImageParams& image,
                                 const v1::SamplingParams& sampling);

// {"prompt", "negative" (null when unset), "seed", "width", ..., "sampler": "euler", ...}.
nlohmann::json ToJson(const std::string& model, const v1::ImageParams& image, const v1::SamplingParams& sampling);

}  // namespace spriteforge
