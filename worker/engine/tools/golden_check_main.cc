// spriteforge-golden-check: runs the golden tiny model's end-to-end cases through the
// public engine API on any device and dtype, and reports the largest difference from the
// reference images. Used on the GPU machine, where the test suite's CPU tolerances do not
// apply (fp32 on CUDA: 1e-3; fp16: 2e-2).
//
//   spriteforge-golden-check --golden DIR [--model FILE_OR_DIR] [--config DIR] [--device cuda] [--dtype fp16]
//                            [--tolerance X] [--json OUT.json] [--workflows DIR] [--controls DIR]
//
// --workflows DIR also runs tiny-sdxl-workflows' cases (LoRA in both file formats, img2img)
// against that folder's vectors; --controls DIR tiny-sdxl-controls' (ControlNet, IP-Adapter).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/cli.h"
#include "spriteforge/engine/engine.h"
#include "worker/engine/base/safetensors.h"
#include "worker/engine/tools/golden_cases.h"

namespace sf = spriteforge::engine;

namespace {

struct Args {
  std::string golden, model, config, device = "cpu", dtype = "fp32", json_out;
  std::string workflows;  // tiny-sdxl-workflows folder; empty: text-to-image cases only
  std::string controls;   // tiny-sdxl-controls folder
  double tolerance = 1e-4;
  bool channels_last = false;
};

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "spriteforge-golden-check: error: %s\n", message.c_str());
  std::exit(2);
}

// Exits 0 after --help or --version, 2 on a usage error (one line), as every spriteforge
// program does (common/cli.h).
Args ParseArgs(int argc, char** argv) {
  Args args;
  CLI::App app("spriteforge-golden-check: runs the golden tiny model's cases through the engine on a device "
               "and dtype and reports the largest difference from the reference images.",
               "spriteforge-golden-check");
  spriteforge::cli::Configure(app);
  app.add_option("--golden", args.golden, "The golden tiny-sdxl folder")->required();
  app.add_option("--model", args.model, "Checkpoint to check (default: the golden folder's tiny-sdxl.safetensors)");
  app.add_option("--config", args.config, "Its diffusers configuration (default: the golden folder's diffusers/)");
  app.add_option("--device", args.device, "cpu, cuda or cuda:N");
  app.add_option("--dtype", args.dtype, "fp32, fp16, bf16 or fp8");
  app.add_option("--tolerance", args.tolerance, "Largest allowed difference from a reference image");
  app.add_option("--json", args.json_out, "Write the report as JSON to this file");
  app.add_option("--channels-last", args.channels_last, "1: channels-last memory layout, 0: contiguous");
  app.add_option("--workflows", args.workflows, "tiny-sdxl-workflows folder: also the LoRA and img2img cases");
  app.add_option("--controls", args.controls, "tiny-sdxl-controls folder: also the ControlNet and IP-Adapter cases");
  if (int code = spriteforge::cli::Parse(app, argc, argv); code >= 0) std::exit(code);
  if (args.model.empty()) args.model = args.golden + "/tiny-sdxl.safetensors";
  if (args.config.empty()) args.config = args.golden + "/diffusers";  // the tiny architecture
  return args;
}

}  // namespace

// One set of cases and the reference images they are checked against.
struct CaseSet {
  std::string label;  // prefix of the LoRA cases' names in the report (the file's format)
  std::map<std::string, sf::BatchRequest> cases;
  std::string vectors;
};

int main(int argc, char** argv) {
  Args args = ParseArgs(argc, argv);
  std::vector<CaseSet> sets;
  auto cases = sf::LoadGoldenCases(args.golden);
  if (!cases.ok()) Die(std::string(cases.status().message()));
  sets.push_back({"", std::move(*cases), args.golden + "/vectors.safetensors"});
  if (!args.workflows.empty()) {
    for (const char* lora_file : {"lora-kohya.safetensors", "lora-diffusers.safetensors"}) {
      auto workflow_cases = sf::LoadWorkflowCases(args.workflows, lora_file);
      if (!workflow_cases.ok()) Die(std::string(workflow_cases.status().message()));
      // img2img does not depend on the LoRA file: run it once.
      if (sets.size() > 1) workflow_cases->erase("img2img.euler");
      sets.push_back({std::string(lora_file).substr(0, std::string(lora_file).find('.')) + ":",
                      std::move(*workflow_cases), args.workflows + "/vectors.safetensors"});
    }
  }

  if (!args.controls.empty()) {
    auto control_cases = sf::LoadControlCases(args.controls);
    if (!control_cases.ok()) Die(std::string(control_cases.status().message()));
    sets.push_back({"", std::move(*control_cases), args.controls + "/vectors.safetensors"});
  }

  sf::LoadOptions load;
  load.model_path = args.model;
  load.tokenizer_dir = args.golden + "/tokenizer";
  load.config_dir = args.config;
  load.device = args.device;
  auto dtype = sf::ParseDtype(args.dtype);
  if (!dtype.ok()) Die("--dtype: " + std::string(dtype.status().message()));
  load.dtype = *dtype;
  load.channels_last = args.channels_last;
  auto engine = sf::Engine::Load(load);
  if (!engine.ok()) Die(std::string(engine.status().message()));

  nlohmann::json report = {{"device", (*engine)->Device().name}, {"dtype", args.dtype},
                           {"tolerance", args.tolerance}, {"cases", nlohmann::json::object()}};
  bool all_pass = true;
  for (const CaseSet& set : sets) {
    auto vectors = sf::SafetensorsFile::Open(set.vectors);
    if (!vectors.ok()) Die(std::string(vectors.status().message()));
    for (const auto& [name, request] : set.cases) {
      // LoRA cases carry their file's format; the others are the same whatever the set.
      const std::string label = name.rfind("lora.", 0) == 0 ? set.label + name : name;
      auto result = (*engine)->Generate(request);
      if (!result.ok()) Die(label + ": " + std::string(result.status().message()));
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
      if (offset * sizeof(float) != expected->nbytes) Die(label + ": image size differs from reference");
      bool pass = max_err <= args.tolerance;
      all_pass = all_pass && pass;
      std::printf("%-40s max_abs_err=%.3g  %s  (%.1f ms)\n", label.c_str(), max_err, pass ? "PASS" : "FAIL",
                  result->timings.total_ms);
      report["cases"][label] = {{"max_abs_err", max_err}, {"pass", pass}, {"total_ms", result->timings.total_ms}};
    }
  }
  if (!args.json_out.empty()) std::ofstream(args.json_out) << report.dump(2) << "\n";
  return all_pass ? 0 : 1;
}
