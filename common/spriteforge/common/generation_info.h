// The parameters of one generated image, and the two ways they travel with the image:
// a JSON sidecar and the A1111-style "parameters" PNG text chunk that image tools read.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace spriteforge {

struct GenerationInfo {
  std::string prompt;
  std::optional<std::string> negative;
  uint64_t seed = 0;
  int width = 0;
  int height = 0;
  int steps = 0;
  double cfg = 0;
  std::string sampler;   // euler | euler_ancestral | dpmpp_2m
  std::string schedule;  // normal | trailing | karras
  std::string model;     // model name as advertised
  bool tileable = false;
};

// "prompt\nNegative prompt: ...\nSteps: 30, Sampler: Euler a, Schedule type: Karras,
// CFG scale: 5, Seed: 42, Size: 1024x1024, Model: sdxl".
std::string FormatParametersText(const GenerationInfo& info);

nlohmann::json ToJson(const GenerationInfo& info);

}  // namespace spriteforge
