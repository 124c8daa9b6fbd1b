// The parameters of one generated image, and the two ways they travel with the image:
// a JSON sidecar and the A1111-style "parameters" PNG text chunk that image tools read.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace spriteforge {

// A LoRA as image tools name it: the file's stem (A1111's <lora:name:strength>).
struct LoraUse {
  std::string name;
  double strength = 1.0;
  // In the service: the content hash of a file uploaded with the job; empty: the file
  // <name>.safetensors in the workers' --lora-dir.
  std::string sha256;
};

struct GenerationInfo {
  std::string prompt;
  std::optional<std::string> negative;
  uint64_t seed = 0;
  int width = 0;
  int height = 0;
  int steps = 0;
  double cfg = 0;
  std::string sampler;   // euler | euler_ancestral | dpmpp_2m | lcm | tcd
  std::string schedule;  // normal | trailing | sgm_uniform | karras
  std::string model;     // model name as advertised
  bool tileable = false;
  std::vector<LoraUse> loras;
  std::optional<double> denoising_strength;  // img2img only
  std::string init_image;                    // service img2img: the uploaded start image's sha256
  double tcd_gamma = 0.3;                    // sampler tcd only
  std::vector<std::string> notes;            // what the engine changed (e.g. a prompt cut)
};

// "prompt <lora:name:0.75>\nNegative prompt: ...\nSteps: 30, Sampler: Euler a, Schedule
// type: Karras, CFG scale: 5, Seed: 42, Size: 1024x1024, Model: sdxl, Denoising strength: 0.6".
std::string FormatParametersText(const GenerationInfo& info);

nlohmann::json ToJson(const GenerationInfo& info);

}  // namespace spriteforge
