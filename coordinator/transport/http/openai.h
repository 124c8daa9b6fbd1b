// OpenAI's image generation request (POST /v1/images/generations) translated to a
// spriteforge job (common/manifest_builder.h). Pure, tested without a server.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "common/manifest.h"

namespace spriteforge::coordinator::http {

struct ImageGeneration {
  std::string prompt;
  std::string model;             // "" for the default
  int64_t n = 1;
  int64_t width = 1024, height = 1024;
  std::string response_format = "b64_json";  // or "url"
  // spriteforge extensions; absent fields keep the manifest defaults.
  std::string negative_prompt;
  bool has_negative = false;
  int64_t seed = -1;
  uint64_t first_seed = 0;
  int64_t steps = 30;
  double cfg_scale = 5.0;
  std::string sampler = "euler";
  ManifestEntry entry;  // the request as spriteforge's typed item, checked as a manifest's
};

// Unknown fields are refused, as OpenAI refuses them; `quality`, `style` and `user`
// are accepted and have no effect.
absl::StatusOr<ImageGeneration> ParseImageGeneration(const nlohmann::json& body, const ManifestLimits& limits,
                                                     int max_images, const std::function<uint64_t()>& draw_seed);

absl::StatusOr<Manifest> ImageGenerationManifest(const ImageGeneration& request, const std::string& model,
                                                 const ManifestLimits& limits);

}  // namespace spriteforge::coordinator::http
