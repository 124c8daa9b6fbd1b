// AUTOMATIC1111's txt2img and img2img API translated to a spriteforge job
// (common/manifest_builder.h), its response fields (`parameters`, `info`) built from the
// finished job, and the per-caller state of /sdapi/v1/options and /sdapi/v1/progress.
// Pure functions and one small class, tested without a server.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
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
  bool guess_mode = false;      // control_mode "ControlNet is more important" (2)
  std::string field;            // "alwayson_scripts.controlnet.args[2].", for errors
};

// A `<lora:name:weight>` tag of the prompt.
struct PromptLora {
  std::string name;
  double weight = 1.0;
};

// A txt2img or img2img request (img2img: `init_png` is set).
struct Txt2Img {
  std::string prompt, negative_prompt;  // as asked, LoRA tags included
  std::string prompt_text;              // the prompt encoded: its LoRA tags taken out, as A1111 does
  std::vector<PromptLora> loras;
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
  std::string init_png;                 // img2img: init_images[0], decoded
  double denoising_strength = 0.75;
  std::vector<std::string> ignored;     // fields A1111 clients send that change nothing here
  int images() const { return static_cast<int>(batch_size * n_iter); }
  ManifestEntry entry;  // the request as spriteforge's typed item, checked as a manifest's
};

// Reads a txt2img request body and builds its entry (errors name A1111's fields). Fields that would change the image but are not
// supported (hires fix, face restoration, variation seeds, scripts other than ControlNet,
// ControlNet modules other than none, canny and ip-adapter*) are refused when set; A1111
// fields that change nothing here (saving, grids, eta, ...) are ignored and listed in
// `ignored`; any other field is refused naming it, so a misspelt one (`promt`) is not
// silently dropped.
absl::StatusOr<Txt2Img> ParseTxt2Img(const nlohmann::json& body, const ManifestLimits& limits, int max_images,
                                     const std::function<uint64_t()>& draw_seed);
// The same for img2img: init_images (one base64 PNG, its size the default width and
// height; another size is stretched to them), denoising_strength, resize_mode 0 only; mask
// (inpainting) refused.
absl::StatusOr<Txt2Img> ParseImg2Img(const nlohmann::json& body, const ManifestLimits& limits, int max_images,
                                     const std::function<uint64_t()>& draw_seed);

// NOT_FOUND naming the first LoRA tag that is in no connected worker's LoRA folder.
absl::Status CheckPromptLoras(const Txt2Img& request, const std::set<std::string>& available);

// The job that renders the request with `model`: its typed entry, whose ControlNet units'
// images are the uploads of Txt2ImgFiles (by their hashes).
// `preview_every`: sampling steps between previews (0: none), for /sdapi/v1/progress.
absl::StatusOr<Manifest> Txt2ImgManifest(const Txt2Img& request, const std::string& model, const ManifestLimits& limits,
                                         int preview_every = 0);

// The images the manifest names, path -> PNG bytes, to upload before it is submitted.
std::map<std::string, std::string> Txt2ImgFiles(const Txt2Img& request);

// The response's `parameters` (the request with defaults filled in) and `info` (a JSON
// document as text, as A1111 returns it) for images with these seeds.
nlohmann::json Txt2ImgParameters(const Txt2Img& request);
std::string Txt2ImgInfo(const Txt2Img& request, const std::string& model, const std::vector<v1::Item>& items);

// A1111's sampler list for the samplers spriteforge has.
nlohmann::json A1111Samplers();

// What one caller (token name) set with POST /sdapi/v1/options and what its latest blocking
// call is doing, for GET /sdapi/v1/progress. A1111 keeps these per server; here each token
// has its own, so one user's model choice never changes another's.
class A1111Sessions {
 public:
  struct Options {
    std::string model;             // "" until chosen: the first served model
    int preview_every = 10;        // A1111's show_progress_every_n_steps; 0: no previews
  };
  Options OptionsOf(const std::string& caller);
  // Reads an options body; `served`: the models connected workers serve.
  absl::Status SetOptions(const std::string& caller, const nlohmann::json& body, const std::set<std::string>& served);
  // The options document for GET, with `model` the one later calls use.
  nlohmann::json OptionsJson(const std::string& caller, const std::string& model);

  // A blocking call's job, told by its events: Begin returns the call's number for the
  // others; a later call of the same caller replaces it in the progress reply.
  int64_t Begin(const std::string& caller, const Txt2Img& request, std::chrono::steady_clock::time_point now);
  void Apply(const std::string& caller, int64_t call, const v1::JobEvent& event);
  void End(const std::string& caller, int64_t call);
  // A1111's progress document: progress 0..1, eta_relative (s), state, current_image (the
  // latest preview as base64 PNG, null without one or when `skip_current_image`).
  nlohmann::json Progress(const std::string& caller, bool skip_current_image, std::chrono::steady_clock::time_point now);

 private:
  struct Running {
    int64_t call = 0;
    int images = 0, batch_size = 1, n_iter = 1;
    int done = 0, running = 0, step = 0, steps = 0;
    std::string preview_png, timestamp;
    std::chrono::steady_clock::time_point started;
  };
  struct Session {
    Options options;
    std::optional<Running> running;
  };
  std::mutex mu_;
  int64_t next_call_ = 1;
  std::map<std::string, Session> sessions_;
};

}  // namespace spriteforge::coordinator::http
