// spriteforge-generate: one-shot text-to-image with the engine, no cluster needed.
//
//   spriteforge-generate --model PATH --prompt TEXT [--prompt TEXT ...] [--negative TEXT ...]
//       [--seed N ...] [--steps N] [--cfg X] [--sampler euler|euler_ancestral|dpmpp_2m|lcm|tcd]
//       [--schedule normal|trailing|sgm_uniform|karras] [--width W] [--height H] [--device cpu|cuda[:N]]
//       [--dtype fp32|fp16|bf16|fp8] [--config DIR] [--tokenizer DIR] [--tileable] [--batch N]
//       [--lora PATH[:STRENGTH] ...] [--init-image PNG --strength S] [--tcd-gamma X]
//       [--controlnet PATH:IMAGE[:SCALE[:START:END]] ... [--guess-mode]]
//       [--ip-adapter PATH [--image-encoder DIR] --reference IMG[:SCALE] ...]
//       --out DIR                                   (--help describes each flag)
//
// Writes DIR/<index>_<seed>.png (RGB, parameters in a "parameters" text chunk) and
// DIR/<index>_<seed>.json for each prompt, index from 0 in prompt order. LoRAs, the init
// image, ControlNets and references apply to every image; with an init image (else a
// control image), width and height default to its size.
//
// Colon-separated values are read from the right: only numbers are a scale, start or end,
// so a path may hold ':' as long as its last part is not a number; PATH:IMAGE splits at the
// one colon where both sides exist (at the first colon when none does, to name what is
// missing).
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/cli.h"
#include "common/files.h"
#include "common/generation_info.h"
#include "common/png.h"
#include "common/sampling.h"
#include "common/sprite/control/resize.h"
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

// A model as the parameters name it: a folder's name, a file's stem.
std::string ModelName(const std::string& path) {
  const std::filesystem::path p = std::filesystem::path(path).lexically_normal();
  return (p.has_filename() ? p : p.parent_path()).stem().string();
}

// Removes up to `most` numeric fields from the end of `fields` and returns them in order.
std::vector<double> TakeNumericTail(std::vector<std::string>& fields, size_t most) {
  std::vector<double> numbers;
  while (numbers.size() < most && fields.size() > 1) {
    double value = 0;
    if (!absl::SimpleAtod(fields.back(), &value)) break;
    numbers.insert(numbers.begin(), value);
    fields.pop_back();
  }
  return numbers;
}

spriteforge::RasterImage ReadImage(const std::string& flag, const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) Fail(flag + ": " + path + ": no such file");
  auto png = spriteforge::ReadPngFile(path);
  if (!png.ok()) Fail(flag + ": " + std::string(png.status().message()));
  return *std::move(png);
}

// A reference image as the RGB the engine takes: alpha dropped, as PIL's convert("RGB") does.
sf::RgbImage ReadRgbImage(const std::string& flag, const std::string& path) {
  const spriteforge::RasterImage png = ReadImage(flag, path);
  sf::RgbImage rgb{png.width, png.height, {}};
  rgb.rgb.reserve(static_cast<size_t>(png.width) * png.height * 3);
  for (size_t p = 0; p < png.pixels.size(); p += png.channels) {
    rgb.rgb.insert(rgb.rgb.end(), png.pixels.begin() + p, png.pixels.begin() + p + 3);
  }
  return rgb;
}

struct ControlFlag {
  sf::ControlNetSpec spec;
  std::string image_path;
  spriteforge::RasterImage image;  // as read; resized once the image size is known
};

// PATH:IMAGE[:SCALE[:START:END]]; PATH is a diffusers ControlNet folder or its .safetensors.
ControlFlag ParseControlNet(const std::string& value) {
  const std::string usage = "--controlnet: expected PATH:IMAGE[:SCALE[:START:END]], got '" + value + "'";
  std::vector<std::string> fields = absl::StrSplit(value, ':');
  std::vector<double> numbers = TakeNumericTail(fields, 3);
  if (numbers.size() == 2) Fail("--controlnet: '" + value + "': START needs END (PATH:IMAGE:SCALE:START:END)");
  if (fields.size() < 2) Fail(usage);
  ControlFlag flag;
  // The split where both sides exist; else the first colon, so the error names what is missing.
  size_t split = 1;
  for (size_t k = 1; k < fields.size(); ++k) {
    const std::string path = absl::StrJoin(fields.begin(), fields.begin() + k, ":");
    const std::string image = absl::StrJoin(fields.begin() + k, fields.end(), ":");
    if (std::filesystem::exists(path) && std::filesystem::is_regular_file(image)) split = k;
  }
  flag.spec.model_path = absl::StrJoin(fields.begin(), fields.begin() + split, ":");
  flag.image_path = absl::StrJoin(fields.begin() + split, fields.end(), ":");
  if (flag.spec.model_path.empty() || flag.image_path.empty()) Fail(usage);
  if (!numbers.empty()) flag.spec.scale = numbers[0];
  if (numbers.size() == 3) {
    flag.spec.start = numbers[1];
    flag.spec.end = numbers[2];
  }
  if (!std::filesystem::exists(flag.spec.model_path)) Fail("--controlnet: " + flag.spec.model_path + ": no such file or folder");
  flag.image = ReadImage("--controlnet", flag.image_path);
  return flag;
}

// The CLIP vision encoder an adapter file uses when --image-encoder is not given: h94's
// SDXL ViT-H adapters (sdxl_models/*vit-h*) use models/image_encoder beside their folder;
// otherwise an image_encoder folder beside the file, else in the folder above.
std::string DefaultImageEncoder(const std::string& adapter_path) {
  const std::filesystem::path file(adapter_path), dir = file.parent_path().empty() ? "." : file.parent_path();
  std::vector<std::filesystem::path> candidates;
  if (file.filename().string().find("vit-h") != std::string::npos) {
    candidates.push_back(dir / ".." / "models" / "image_encoder");
  }
  candidates.push_back(dir / "image_encoder");
  candidates.push_back(dir / ".." / "image_encoder");
  for (const auto& candidate : candidates) {
    if (std::filesystem::is_directory(candidate)) return candidate.lexically_normal().string();
  }
  Fail("--ip-adapter: no image_encoder folder beside " + adapter_path + " or above it: give --image-encoder DIR");
}

// IMG or IMG:SCALE; the adapter has one scale, so the references that give one must agree.
struct ReferenceFlags {
  std::vector<std::string> paths;
  std::vector<sf::RgbImage> images;
  std::optional<double> scale;
};

ReferenceFlags ParseReferences(const std::vector<std::string>& values) {
  ReferenceFlags out;
  for (const std::string& value : values) {
    std::vector<std::string> fields = absl::StrSplit(value, ':');
    std::vector<double> numbers = TakeNumericTail(fields, 1);
    if (!numbers.empty()) {
      if (out.scale && *out.scale != numbers[0]) {
        Fail(absl::StrCat("--reference: scales ", *out.scale, " and ", numbers[0],
                          ": the IP-Adapter has one scale for all its references"));
      }
      out.scale = numbers[0];
    }
    out.paths.push_back(absl::StrJoin(fields, ":"));
    out.images.push_back(ReadRgbImage("--reference", out.paths.back()));
  }
  return out;
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
  std::string sampler = "euler", schedule = "normal", dtype = "fp32", vae_dtype;
  sf::LoadOptions load;
  std::string out_dir;
  std::vector<std::string> prompts, negatives;
  std::vector<uint64_t> seeds;
  std::vector<std::string> loras;
  std::string init_path;
  std::vector<std::string> controlnets, references;
  bool guess_mode = false;
  std::string ip_adapter_path, image_encoder_dir;
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
  app.add_option("--controlnet", controlnets,
                 "ControlNet (diffusers folder or its .safetensors) with its control image (a PNG of the images' "
                 "aspect ratio, resized to their size) as PATH:IMAGE, PATH:IMAGE:SCALE or PATH:IMAGE:SCALE:START:END (share of the steps, "
                 "default 1:0:1); repeat for several")
      ->allow_extra_args(false);
  app.add_flag("--guess-mode", guess_mode,
               "Every ControlNet in guess mode: with CFG it acts on the prompt's half only, its residuals weighted "
               "from 0.1 (outer) to 1 (deep), as A1111's \"ControlNet is more important\"");
  app.add_option("--ip-adapter", ip_adapter_path, "IP-Adapter file (h94's .safetensors, plain or Plus); needs --reference");
  app.add_option("--image-encoder", image_encoder_dir,
                 "The IP-Adapter's CLIP vision encoder folder (default: image_encoder beside the adapter file or "
                 "in the folder above; ../models/image_encoder for h94's sdxl_models/*vit-h* files)");
  app.add_option("--reference", references,
                 "Reference image for the IP-Adapter as IMG or IMG:SCALE (the adapter's scale, default 1; one "
                 "scale for all); repeat for several")
      ->allow_extra_args(false);
  app.add_option("--tcd-gamma", tcd_gamma, "tcd: noise re-injected per step, 0..1");
  app.add_flag("--tileable", tileable, "Pad circularly for seamless tiles");
  app.add_option("--batch", batch, "Images per engine call (0: all at once)")->check(CLI::NonNegativeNumber);
  app.add_option("--device", load.device, "cpu, cuda or cuda:N");
  app.add_option("--dtype", dtype, "fp32, fp16, bf16 or fp8");
  app.add_option("--vae-dtype", vae_dtype, "The VAE's precision: fp32, fp16 or bf16 (default: --dtype's; bf16 for fp8)");
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
  if (!vae_dtype.empty()) {
    auto parsed = sf::ParseDtype(vae_dtype);
    if (!parsed.ok()) Fail("--vae-dtype: " + std::string(parsed.status().message()));
    load.vae_dtype = *parsed;
  }
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
  std::vector<ControlFlag> controls;
  for (const std::string& value : controlnets) controls.push_back(ParseControlNet(value));
  if (guess_mode && controls.empty()) Fail("--guess-mode needs --controlnet");
  for (ControlFlag& control : controls) control.spec.guess_mode = guess_mode;
  if (!init_image && !controls.empty()) {
    if (width_flag->count() == 0) width = controls[0].image.width;
    if (height_flag->count() == 0) height = controls[0].image.height;
  }
  // Control images of the images' aspect ratio are resized to their size, others refused.
  std::vector<sf::RgbImage> control_images;
  for (const ControlFlag& control : controls) {
    auto resized = spriteforge::control::ResizeControlImage(control.image, width, height);
    if (!resized.ok()) Fail("--controlnet: " + control.image_path + ": " + std::string(resized.status().message()));
    control_images.push_back(sf::RgbImage{resized->width, resized->height, std::move(resized->pixels)});
    spriteforge::v1::ControlNetRef* ref = sampling.add_controlnets();
    ref->set_name(ModelName(control.spec.model_path));
    ref->set_scale(control.spec.scale);
    ref->set_start(control.spec.start);
    ref->set_end(control.spec.end);
    ref->set_guess_mode(control.spec.guess_mode);
  }
  std::optional<sf::IpAdapterSpec> ip_adapter;
  const ReferenceFlags reference = ParseReferences(references);
  if (!ip_adapter_path.empty()) {
    if (!std::filesystem::is_regular_file(ip_adapter_path)) Fail("--ip-adapter: " + ip_adapter_path + ": no such file");
    if (reference.images.empty()) Fail("--ip-adapter needs --reference");
    if (image_encoder_dir.empty()) image_encoder_dir = DefaultImageEncoder(ip_adapter_path);
    if (!std::filesystem::is_directory(image_encoder_dir)) Fail("--image-encoder: " + image_encoder_dir + ": no such folder");
    ip_adapter = sf::IpAdapterSpec{ip_adapter_path, image_encoder_dir, reference.scale.value_or(1.0)};
    spriteforge::v1::IpAdapterRef* ref = sampling.mutable_ip_adapter();
    ref->set_name(ModelName(ip_adapter_path));
    ref->set_encoder(ModelName(image_encoder_dir));
    ref->set_scale(ip_adapter->scale);
  } else if (!reference.images.empty()) {
    Fail("--reference needs --ip-adapter");
  } else if (!image_encoder_dir.empty()) {
    Fail("--image-encoder needs --ip-adapter");
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
  // The controls are this command's own files, so they join the request here rather than
  // through the uploaded-file names a worker resolves.
  spriteforge::v1::SamplingParams without_controls = sampling;
  without_controls.clear_controlnets();
  without_controls.clear_ip_adapter();
  auto base = sf::ToEngineRequest(without_controls, lora_paths);
  if (!base.ok()) Fail(std::string(base.status().message()));
  for (const ControlFlag& control : controls) base->controlnets.push_back(control.spec);
  base->ip_adapter = ip_adapter;
  for (const auto& image : images) {
    base->images.push_back(sf::ToEngineImage(image, init_image));
    base->images.back().control_images = control_images;
    base->images.back().reference_images = reference.images;
  }
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
      for (size_t c = 0; c < controls.size(); ++c) {
        sidecar["controlnets"][c]["path"] = controls[c].spec.model_path;
        sidecar["controlnets"][c]["image"] = controls[c].image_path;
      }
      if (ip_adapter) {
        sidecar["ip_adapter"]["path"] = ip_adapter->adapter_path;
        sidecar["ip_adapter"]["image_encoder_path"] = ip_adapter->encoder_dir;
        sidecar["ip_adapter"]["references"] = reference.paths;
      }
      if (auto s = spriteforge::WriteFileAtomic(stem + ".json", sidecar.dump(2) + "\n"); !s.ok()) Fail(std::string(s.message()));
      std::printf("%s.png\n", stem.c_str());
    }
  }
  return 0;
}
