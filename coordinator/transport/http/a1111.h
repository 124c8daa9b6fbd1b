// AUTOMATIC1111's txt2img API translated to a spriteforge job (common/manifest_builder.h), and its response
// fields (`parameters`, `info`) built from the finished job. Pure functions, tested
// without a server.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "common/manifest.h"

namespace spriteforge::coordinator::http {

// One unit of A1111's ControlNet extension (alwayson_scripts.controlnet.args[i]).
struct ControlUnit {
  std::string module = "none";  // none, canny, or ip-adapter* (the unit is then the reference)
  std::string model;            // the name workers know it by, without A1111's " [hash]"
  std::string png;              // input_image, decoded
  double weight = 1.0, guidance_start = 0.0, guidance_end = 1.0;
  double threshold_a = 100, threshold_b = 200;  // canny: low and high
  std::string field;            // "alwayson_scripts.controlnet.args[2].", for errors
};

struct Txt2Img {
  std::string prompt, negative_prompt;
  int64_t seed = -1;       // as asked (-1: random)
  uint64_t first_seed = 0; // as used: image k has first_seed + k, as in A1111
  int64_t steps = 50, width = 512, height = 512, batch_size = 1, n_iter = 1;
  double cfg_scale = 7.0;
  std::string sampler_name = "Euler", scheduler = "Automatic";
  std::string sampler, schedule;  // spriteforge's names
  bool tiling = false;
  std::string model;              // override_settings.sd_model_checkpoint, "" for the default
  std::vector<ControlUnit> controls;    // ControlNet units in order, the IP-Adapter's apart:
  std::vector<ControlUnit> references;  // its units (one adapter, each a reference image)
  int images() const { return static_cast<int>(batch_size * n_iter); }
  ManifestEntry entry;  // the request as spriteforge's typed item, checked as a manifest's
};

// Reads a txt2img request body and builds its entry (errors name A1111's fields). Fields that would change the image but are not
// supported (hires fix, face restoration, variation seeds, scripts other than ControlNet,
// ControlNet modules other than none, canny and ip-adapter*) are refused when set; other
// A1111 fields (saving, grids, a unit's pixel_perfect, ...) are ignored, as A1111 ignores
// unknown ones.
absl::StatusOr<Txt2Img> ParseTxt2Img(const nlohmann::json& body, const ManifestLimits& limits, int max_images,
                                     const std::function<uint64_t()>& draw_seed);

// The job that renders the request with `model`: its typed entry, whose ControlNet units'
// images are the uploads of Txt2ImgFiles (by their hashes).
absl::StatusOr<Manifest> Txt2ImgManifest(const Txt2Img& request, const std::string& model, const ManifestLimits& limits);

// The images the manifest names, path -> PNG bytes, to upload before it is submitted.
std::map<std::string, std::string> Txt2ImgFiles(const Txt2Img& request);

// The response's `parameters` (the request with defaults filled in) and `info` (a JSON
// document as text, as A1111 returns it) for images with these seeds.
nlohmann::json Txt2ImgParameters(const Txt2Img& request);
std::string Txt2ImgInfo(const Txt2Img& request, const std::string& model, const std::vector<v1::Item>& items);

// A1111's sampler list for the samplers spriteforge has.
nlohmann::json A1111Samplers();

}  // namespace spriteforge::coordinator::http
