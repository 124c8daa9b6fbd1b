// spriteforge-generate: one-shot text-to-image with the engine, no cluster needed.
//
//   spriteforge-generate --model PATH --prompt TEXT [--prompt TEXT ...] [--negative TEXT ...]
//       [--seed N ...] [--steps N] [--cfg X] [--sampler euler|euler_ancestral|dpmpp_2m]
//       [--schedule normal|trailing|karras] [--width W] [--height H] [--device cpu|cuda[:N]]
//       [--dtype fp32|fp16|bf16] [--config DIR] [--tokenizer DIR] [--tileable] [--batch N]
//       --out DIR
//
// Writes DIR/<index>_<seed>.png (RGB, parameters in a "parameters" text chunk) and
// DIR/<index>_<seed>.json for each prompt, index from 0 in prompt order.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "spriteforge/common/files.h"
#include "spriteforge/common/generation_info.h"
#include "spriteforge/common/png.h"
#include "spriteforge/engine/engine.h"

namespace sf = spriteforge::engine;

namespace {

constexpr char kUsage[] =
    "usage: spriteforge-generate --model PATH --prompt TEXT [--prompt TEXT ...] --out DIR\n"
    "  [--negative TEXT ...] [--seed N ...] [--steps N] [--cfg X]\n"
    "  [--sampler euler|euler_ancestral|dpmpp_2m] [--schedule normal|trailing|karras]\n"
    "  [--width W] [--height H] [--device cpu|cuda[:N]] [--dtype fp32|fp16|bf16]\n"
    "  [--config DIR] [--tokenizer DIR] [--tileable] [--batch N]\n";

[[noreturn]] void Fail(const std::string& message) {
  std::fprintf(stderr, "spriteforge-generate: error: %s\n", message.c_str());
  std::exit(2);
}

struct Args {
  std::map<std::string, std::vector<std::string>> values;
  bool tileable = false;

  const std::string* One(const std::string& flag) const {
    auto it = values.find(flag);
    if (it == values.end()) return nullptr;
    if (it->second.size() > 1) Fail(flag + " given more than once");
    return &it->second.front();
  }
  std::vector<std::string> Many(const std::string& flag) const {
    auto it = values.find(flag);
    return it == values.end() ? std::vector<std::string>{} : it->second;
  }
};

Args Parse(int argc, char** argv) {
  static const char* kValued[] = {"--model", "--config", "--tokenizer", "--prompt", "--negative", "--seed",
                                  "--steps", "--cfg", "--sampler", "--schedule", "--width", "--height",
                                  "--device", "--dtype", "--out", "--batch"};
  Args args;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (flag == "--tileable") {
      args.tileable = true;
      continue;
    }
    bool known = false;
    for (const char* k : kValued) known = known || flag == k;
    if (!known) Fail("unknown argument '" + flag + "' (see --help)");
    if (i + 1 >= argc) Fail("missing value for " + flag);
    args.values[flag].push_back(argv[++i]);
  }
  return args;
}

int IntFlag(const Args& a, const std::string& flag, int fallback) {
  const std::string* v = a.One(flag);
  int out = fallback;
  if (v && !absl::SimpleAtoi(*v, &out)) Fail(flag + ": '" + *v + "' is not an integer");
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Args args = Parse(argc, argv);
  const std::string* model = args.One("--model");
  const std::string* out_dir = args.One("--out");
  if (!model) Fail("--model PATH is required");
  if (!out_dir) Fail("--out DIR is required");
  std::vector<std::string> prompts = args.Many("--prompt");
  std::vector<std::string> negatives = args.Many("--negative");
  std::vector<std::string> seeds = args.Many("--seed");
  if (prompts.empty()) Fail("at least one --prompt is required");
  if (!negatives.empty() && negatives.size() != prompts.size()) {
    Fail(absl::StrCat(negatives.size(), " --negative for ", prompts.size(), " --prompt: give one per prompt or none"));
  }
  if (!seeds.empty() && seeds.size() != prompts.size()) {
    Fail(absl::StrCat(seeds.size(), " --seed for ", prompts.size(), " --prompt: give one per prompt or none"));
  }

  sf::BatchRequest base;
  base.width = IntFlag(args, "--width", 1024);
  base.height = IntFlag(args, "--height", 1024);
  base.steps = IntFlag(args, "--steps", 30);
  if (const std::string* cfg = args.One("--cfg"); cfg && !absl::SimpleAtod(*cfg, &base.cfg)) {
    Fail("--cfg: '" + *cfg + "' is not a number");
  }
  if (const std::string* s = args.One("--sampler")) base.sampler = *s;
  if (const std::string* s = args.One("--schedule")) base.schedule = *s;
  base.tileable = args.tileable;
  for (size_t i = 0; i < prompts.size(); ++i) {
    sf::ImageRequest image{prompts[i], std::nullopt, i};
    if (!negatives.empty()) image.negative = negatives[i];
    if (!seeds.empty() && !absl::SimpleAtoi(seeds[i], &image.seed)) Fail("--seed: '" + seeds[i] + "' is not a non-negative integer");
    base.images.push_back(image);
  }
  if (auto s = sf::ValidateRequest(base); !s.ok()) Fail(std::string(s.message()));
  const int batch = IntFlag(args, "--batch", static_cast<int>(prompts.size()));
  if (batch < 1) Fail("--batch must be at least 1");

  sf::LoadOptions load;
  load.model_path = *model;
  if (const std::string* v = args.One("--config")) load.config_dir = *v;
  if (const std::string* v = args.One("--tokenizer")) load.tokenizer_dir = *v;
  if (const std::string* v = args.One("--device")) load.device = *v;
  if (const std::string* v = args.One("--dtype")) load.dtype = *v;
  std::error_code ec;
  std::filesystem::create_directories(*out_dir, ec);
  if (ec) Fail(*out_dir + ": cannot create: " + ec.message());
  auto engine = sf::Engine::Load(load);
  if (!engine.ok()) Fail(std::string(engine.status().message()));

  const std::string model_name = std::filesystem::path(*model).stem().string();
  for (size_t first = 0; first < base.images.size(); first += batch) {
    sf::BatchRequest request = base;
    request.images.assign(base.images.begin() + first,
                          base.images.begin() + std::min(base.images.size(), first + batch));
    auto result = (*engine)->Generate(request, [&](int step, int total) {
      std::fprintf(stderr, "\rimages %zu-%zu: step %d/%d", first, first + request.images.size() - 1, step, total);
      return true;
    });
    std::fputc('\n', stderr);
    if (!result.ok()) Fail(std::string(result.status().message()));
    for (size_t k = 0; k < result->images.size(); ++k) {
      const sf::Image& image = result->images[k];
      const sf::ImageRequest& item = request.images[k];
      spriteforge::GenerationInfo info{item.prompt, item.negative, item.seed, request.width, request.height,
                                       request.steps, request.cfg, request.sampler, request.schedule,
                                       model_name, request.tileable};
      const std::string stem = absl::StrCat(*out_dir, "/", first + k, "_", item.seed);
      spriteforge::RasterImage raster{image.width, image.height, 3, image.rgb};
      if (auto s = spriteforge::WritePngFile(stem + ".png", raster, {{"parameters", spriteforge::FormatParametersText(info)}}); !s.ok()) {
        Fail(std::string(s.message()));
      }
      nlohmann::json sidecar = spriteforge::ToJson(info);
      sidecar["index"] = first + k;
      sidecar["model_path"] = *model;
      sidecar["device"] = load.device;
      sidecar["dtype"] = load.dtype;
      sidecar["batch_size"] = request.images.size();
      sidecar["timings_ms"] = {{"encode", result->timings.encode_ms}, {"denoise", result->timings.denoise_ms},
                               {"decode", result->timings.decode_ms}, {"total", result->timings.total_ms}};
      sidecar["peak_memory_bytes"] = result->memory.peak_allocated_bytes;
      if (auto s = spriteforge::WriteFileAtomic(stem + ".json", sidecar.dump(2) + "\n"); !s.ok()) Fail(std::string(s.message()));
      std::printf("%s.png\n", stem.c_str());
    }
  }
  return 0;
}
