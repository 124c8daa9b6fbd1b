// spriteforge-generate: one-shot text-to-image with the engine, no cluster needed.
//
//   spriteforge-generate --model PATH --prompt TEXT [--prompt TEXT ...] [--negative TEXT ...]
//       [--seed N ...] [--steps N] [--cfg X] [--sampler euler|euler_ancestral|dpmpp_2m|lcm|tcd]
//       [--schedule normal|trailing|sgm_uniform|karras] [--width W] [--height H] [--device cpu|cuda[:N]]
//       [--dtype fp32|fp16|bf16|fp8] [--config DIR] [--tokenizer DIR] [--tileable] [--batch N]
//       [--lora PATH[:STRENGTH] ...] [--init-image PNG --strength S] [--tcd-gamma X]
//       --out DIR                                   (--help describes each flag)
//
// Writes DIR/<index>_<seed>.png (RGB, parameters in a "parameters" text chunk) and
// DIR/<index>_<seed>.json for each prompt, index from 0 in prompt order. LoRAs and the
// init image apply to every image; with an init image, width and height default to its size.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/cli.h"
#include "common/files.h"
#include "common/generation_info.h"
#include "common/png.h"
#include "common/sampling.h"
#include "spriteforge/engine/engine.h"
#include "worker/engine/adapter/engine_request.h"

namespace sf = spriteforge::engine;

namespace {

[[noreturn]] void Fail(const std::string& message) {
  std::fprintf(stderr, "spriteforge-generate: error: %s\n", message.c_str());
  std::exit(2);
}

// PATH or PATH:STRENGTH; a path may itself hold ':', so only a numeric tail is a strength.
sf::LoraSpec ParseLora(const std::string& value) {
  sf::LoraSpec spec{value, 1.0};
  if (auto colon = value.rfind(':'); colon != std::string::npos && colon > 0) {
    double strength = 0;
    if (absl::SimpleAtod(value.substr(colon + 1), &strength)) spec = {value.substr(0, colon), strength};
  }
  if (!std::filesystem::is_regular_file(spec.path)) Fail("--lora: " + spec.path + ": no such file");
  return spec;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("spriteforge-generate: text to image with the engine, no coordinator needed. Writes "
               "OUT/<index>_<seed>.png and .json per prompt, index from 0 in prompt order.",
               "spriteforge-generate");
  spriteforge::cli::Configure(app);
  // The flags fill the API's parameter messages, which become the engine's request in the
  // same place as a worker's batches (adapter/engine_request.h).
  spriteforge::v1::SamplingParams sampling;
  int width = 1024, height = 1024, steps = 30;
  double cfg = 5.0, strength = 0.75 /* A1111's img2img default */, tcd_gamma = 0.3;
  bool tileable = false;
  std::string sampler = "euler", schedule = "normal", dtype = "fp32";
  sf::LoadOptions load;
  std::string out_dir;
  std::vector<std::string> prompts, negatives;
  std::vector<uint64_t> seeds;
  std::vector<std::string> loras;
  std::string init_path;
  int batch = 0;
  app.add_option("--model", load.model_path,
                 "SDXL checkpoint: a single .safetensors file, a diffusers folder, or builtin:tiny")
      ->required();
  app.add_option("--prompt", prompts, "A prompt; repeat for several images")->required()->allow_extra_args(false);
  app.add_option("--negative", negatives, "Negative prompt, one per --prompt or none")->allow_extra_args(false);
  app.add_option("--seed", seeds, "Seed, one per --prompt or none (default: 0, 1, ...)")->allow_extra_args(false);
  app.add_option("--out", out_dir, "Folder to write into (created)")->required();
  app.add_option("--steps", steps, "Denoising steps");
  app.add_option("--cfg", cfg, "Classifier-free guidance scale");
  app.add_option("--sampler", sampler, "euler, euler_ancestral, dpmpp_2m, lcm or tcd");
  app.add_option("--schedule", schedule, "normal, trailing, sgm_uniform (= trailing) or karras");
  auto* width_flag = app.add_option("--width", width, "Image width, a multiple of 8 (default with --init-image: its width)");
  auto* height_flag = app.add_option("--height", height, "Image height, a multiple of 8 (default with --init-image: its height)");
  app.add_option("--lora", loras, "LoRA file (kohya or diffusers/PEFT .safetensors) as PATH or PATH:STRENGTH; repeat for several")
      ->allow_extra_args(false);
  app.add_option("--init-image", init_path, "img2img: start every image from this RGB PNG");
  auto* strength_flag = app.add_option("--strength", strength, "img2img: share of the schedule that runs, (0, 1]");
  app.add_option("--tcd-gamma", tcd_gamma, "tcd: noise re-injected per step, 0..1");
  app.add_flag("--tileable", tileable, "Pad circularly for seamless tiles");
  app.add_option("--batch", batch, "Images per engine call (0: all at once)")->check(CLI::NonNegativeNumber);
  app.add_option("--device", load.device, "cpu, cuda or cuda:N");
  app.add_option("--dtype", dtype, "fp32, fp16, bf16 or fp8");
  app.add_option("--config", load.config_dir, "diffusers folder with the model's configuration, for single files");
  app.add_option("--tokenizer", load.tokenizer_dir,
                 "Folder with the CLIP tokenizer's vocab.json and merges.txt (default: the model folder's tokenizer/, else the vocabulary shipped with spriteforge)");
  if (int code = spriteforge::cli::Parse(app, argc, argv); code >= 0) return code;
  auto parsed_sampler = spriteforge::ParseSampler(sampler);
  if (!parsed_sampler.ok()) Fail("--sampler: " + std::string(parsed_sampler.status().message()));
  auto parsed_schedule = spriteforge::ParseSchedule(schedule);
  if (!parsed_schedule.ok()) Fail("--schedule: " + std::string(parsed_schedule.status().message()));
  auto parsed_dtype = sf::ParseDtype(dtype);
  if (!parsed_dtype.ok()) Fail("--dtype: " + std::string(parsed_dtype.status().message()));
  load.dtype = *parsed_dtype;
  std::optional<sf::RgbImage> init_image;
  if (!init_path.empty()) {
    auto png = spriteforge::ReadPngFile(init_path);
    if (!png.ok()) Fail(std::string(png.status().message()));
    if (png->channels != 3) Fail("--init-image: " + init_path + ": expected an RGB image, got " + std::to_string(png->channels) + " channels");
    init_image = sf::RgbImage{png->width, png->height, png->pixels};
    if (width_flag->count() == 0) width = png->width;
    if (height_flag->count() == 0) height = png->height;
    sampling.set_strength(strength);
  } else if (strength_flag->count() > 0) {
    Fail("--strength needs --init-image");
  }
  sampling.set_width(width);
  sampling.set_height(height);
  sampling.set_steps(steps);
  sampling.set_cfg(cfg);
  sampling.set_sampler(*parsed_sampler);
  sampling.set_schedule(*parsed_schedule);
  sampling.set_tileable(tileable);
  if (*parsed_sampler == spriteforge::v1::SAMPLER_TCD) sampling.set_tcd_gamma(tcd_gamma);
  std::vector<std::string> lora_paths;
  for (const std::string& lora : loras) {
    const sf::LoraSpec spec = ParseLora(lora);
    spriteforge::v1::LoraRef* ref = sampling.add_loras();
    ref->set_name(std::filesystem::path(spec.path).stem().string());
    ref->set_strength(spec.strength);
    lora_paths.push_back(spec.path);
  }
  if (!negatives.empty() && negatives.size() != prompts.size()) {
    Fail(absl::StrCat(negatives.size(), " --negative for ", prompts.size(), " --prompt: give one per prompt or none"));
  }
  if (!seeds.empty() && seeds.size() != prompts.size()) {
    Fail(absl::StrCat(seeds.size(), " --seed for ", prompts.size(), " --prompt: give one per prompt or none"));
  }
  std::vector<spriteforge::v1::ImageParams> images(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    images[i].set_prompt(prompts[i]);
    if (!negatives.empty()) images[i].set_negative(negatives[i]);
    images[i].set_seed(seeds.empty() ? i : seeds[i]);
  }
  auto base = sf::ToEngineRequest(sampling, lora_paths);
  if (!base.ok()) Fail(std::string(base.status().message()));
  for (const auto& image : images) base->images.push_back(sf::ToEngineImage(image, init_image));
  if (auto s = sf::ValidateRequest(*base); !s.ok()) Fail(std::string(s.message()));
  if (batch == 0) batch = static_cast<int>(prompts.size());

  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) Fail(out_dir + ": cannot create: " + ec.message());
  auto engine = sf::Engine::Load(load);
  if (!engine.ok()) Fail(std::string(engine.status().message()));

  const std::string model_name = std::filesystem::path(load.model_path).stem().string();
  for (size_t first = 0; first < base->images.size(); first += batch) {
    sf::BatchRequest request = *base;
    request.images.assign(base->images.begin() + first,
                          base->images.begin() + std::min(base->images.size(), first + batch));
    auto result = (*engine)->Generate(request, [&](int step, int total) {
      std::fprintf(stderr, "\rimages %zu-%zu: step %d/%d", first, first + request.images.size() - 1, step, total);
      return true;
    });
    std::fputc('\n', stderr);
    if (!result.ok()) Fail(std::string(result.status().message()));
    for (size_t k = 0; k < result->images.size(); ++k) {
      const sf::Image& image = result->images[k];
      const spriteforge::v1::ImageParams& params = images[first + k];
      const std::string stem = absl::StrCat(out_dir, "/", first + k, "_", params.seed());
      spriteforge::RasterImage raster{image.width, image.height, 3, image.rgb};
      const std::string text = spriteforge::FormatParametersText(model_name, params, sampling);
      if (auto s = spriteforge::WritePngFile(stem + ".png", raster, {{"parameters", text}}); !s.ok()) {
        Fail(std::string(s.message()));
      }
      nlohmann::json sidecar = spriteforge::ToJson(model_name, params, sampling);
      if (!image.notes.empty()) sidecar["notes"] = image.notes;
      sidecar["index"] = first + k;
      sidecar["model_path"] = load.model_path;
      sidecar["device"] = load.device;
      sidecar["dtype"] = std::string(sf::DtypeName(load.dtype));
      sidecar["batch_size"] = request.images.size();
      sidecar["timings_ms"] = {{"encode", result->timings.encode_ms}, {"denoise", result->timings.denoise_ms},
                               {"decode", result->timings.decode_ms}, {"total", result->timings.total_ms}};
      sidecar["peak_memory_bytes"] = result->memory.peak_allocated_bytes;
      for (size_t l = 0; l < lora_paths.size(); ++l) sidecar["loras"][l]["path"] = lora_paths[l];
      if (init_image) sidecar["init_image"] = init_path;
      if (auto s = spriteforge::WriteFileAtomic(stem + ".json", sidecar.dump(2) + "\n"); !s.ok()) Fail(std::string(s.message()));
      std::printf("%s.png\n", stem.c_str());
    }
  }
  return 0;
}
