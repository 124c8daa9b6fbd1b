// spriteforge-golden-check: runs the golden tiny model's end-to-end cases through the
// public engine API on any device and dtype, and reports the largest difference from the
// reference images. Used on the GPU machine, where the test suite's CPU tolerances do not
// apply (fp32 on CUDA: 1e-3; fp16: 2e-2).
//
//   spriteforge-golden-check --golden DIR [--model FILE_OR_DIR] [--config DIR] [--device cuda] [--dtype fp16]
//                            [--tolerance X] [--json OUT.json]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/safetensors.h"
#include "spriteforge/engine/engine.h"
#include "tools/golden_cases.h"

namespace sf = spriteforge::engine;

namespace {

struct Args {
  std::string golden, model, config, device = "cpu", dtype = "fp32", json_out;
  double tolerance = 1e-4;
  bool channels_last = false;
};

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "spriteforge-golden-check: error: %s\n", message.c_str());
  std::exit(2);
}

Args ParseArgs(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (i + 1 >= argc) Die("missing value for " + flag);
    std::string value = argv[++i];
    if (flag == "--golden") args.golden = value;
    else if (flag == "--model") args.model = value;
    else if (flag == "--config") args.config = value;
    else if (flag == "--device") args.device = value;
    else if (flag == "--dtype") args.dtype = value;
    else if (flag == "--tolerance") args.tolerance = std::atof(value.c_str());
    else if (flag == "--json") args.json_out = value;
    else if (flag == "--channels-last") args.channels_last = value != "0";
    else Die("unknown flag " + flag);
  }
  if (args.golden.empty()) Die("--golden DIR is required");
  if (args.model.empty()) args.model = args.golden + "/tiny-sdxl.safetensors";
  if (args.config.empty()) args.config = args.golden + "/diffusers";  // the tiny architecture
  return args;
}

}  // namespace

int main(int argc, char** argv) {
  Args args = ParseArgs(argc, argv);
  auto cases = sf::LoadGoldenCases(args.golden);
  if (!cases.ok()) Die(std::string(cases.status().message()));
  auto vectors = sf::SafetensorsFile::Open(args.golden + "/vectors.safetensors");
  if (!vectors.ok()) Die(std::string(vectors.status().message()));

  sf::LoadOptions load;
  load.model_path = args.model;
  load.tokenizer_dir = args.golden + "/tokenizer";
  load.config_dir = args.config;
  load.device = args.device;
  load.dtype = args.dtype;
  load.channels_last = args.channels_last;
  auto engine = sf::Engine::Load(load);
  if (!engine.ok()) Die(std::string(engine.status().message()));

  nlohmann::json report = {{"device", (*engine)->Device().name}, {"dtype", args.dtype},
                           {"tolerance", args.tolerance}, {"cases", nlohmann::json::object()}};
  bool all_pass = true;
  for (const auto& [name, request] : *cases) {
    auto result = (*engine)->Generate(request);
    if (!result.ok()) Die(name + ": " + std::string(result.status().message()));
    const sf::TensorView* expected = (*vectors)->Find(name + ".images");
    if (!expected || expected->dtype != sf::DType::kF32) Die(name + ".images missing or not F32");
    const float* ref = static_cast<const float*>(expected->data);
    double max_err = 0;
    size_t offset = 0;
    for (const sf::Image& image : result->images) {
      for (size_t k = 0; k < image.rgb_f32.size(); ++k) {
        max_err = std::max(max_err, std::fabs(static_cast<double>(image.rgb_f32[k]) - ref[offset + k]));
      }
      offset += image.rgb_f32.size();
    }
    if (offset * sizeof(float) != expected->nbytes) Die(name + ": image size differs from reference");
    bool pass = max_err <= args.tolerance;
    all_pass = all_pass && pass;
    std::printf("%-24s max_abs_err=%.3g  %s  (%.1f ms)\n", name.c_str(), max_err,
                pass ? "PASS" : "FAIL", result->timings.total_ms);
    report["cases"][name] = {{"max_abs_err", max_err}, {"pass", pass},
                             {"total_ms", result->timings.total_ms}};
  }
  if (!args.json_out.empty()) std::ofstream(args.json_out) << report.dump(2) << "\n";
  return all_pass ? 0 : 1;
}
