// spriteforge-bench: end-to-end SDXL throughput and memory on one device, through the
// same public engine API the worker uses. With no weights available it builds the full
// SDXL-base architecture with random weights ("builtin:sdxl-base"): speed and memory do
// not depend on weight values.
//
//   spriteforge-bench [--model builtin:sdxl-base] [--device cuda] [--dtypes fp16,bf16,fp8]
//                     [--batches 1,4,8,16] [--size 1024] [--steps 30] [--runs 2]
//                     [--compare] [--channels-last 0|1] [--cuda-graphs 0|1] [--fused-kernels 0|1]
//                     [--decode-batch N (0: as memory allows)] [--json OUT.json]
//                     [--cfg 5] [--sampler euler] [--schedule normal] [--lora-rank R]
//
// --lora-rank R merges a random rank-R LoRA over every transformer Linear of the UNet (the
// shape of SDXL-Lightning's) and, after the timed runs, switches to a second one: the
// switch's merge time is reported. With --cfg 1 each image takes one UNet pass a step.
// --compare also runs the baseline (fp32, NCHW, no CUDA graphs, no cuDNN autotuning) in
// the same process, so the two paths are measured on the same card minutes apart.
// Timings come from the engine (device-synchronised at phase boundaries); each
// configuration is warmed up once before the timed runs, and the median run is reported.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "spriteforge/engine/engine.h"
#include "worker/engine/bench/random_lora.h"

namespace sf = spriteforge::engine;

namespace {

struct Args {
  std::string model = "builtin:sdxl-base";
  std::string device = "cuda";
  std::vector<std::string> dtypes = {"fp16", "bf16"};
  std::vector<int> batches = {1, 4, 8, 16};
  int size = 1024;
  int steps = 30;
  int runs = 2;
  bool compare = false;
  bool channels_last = true;
  bool cuda_graphs = true;
  bool fused_kernels = true;
  int decode_batch = 1;
  std::string json_out;
  double cfg = 5.0;
  std::string sampler = "euler";
  std::string schedule = "normal";
  int lora_rank = 0;
  std::vector<sf::LoraSpec> loras;  // the random LoRAs written for --lora-rank: [the one timed, the switch]
};

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "spriteforge-bench: error: %s\n", message.c_str());
  std::exit(2);
}

int ToInt(const std::string& flag, const std::string& text) {
  int v = 0;
  if (!absl::SimpleAtoi(text, &v) || v <= 0) Die(flag + ": expected a positive integer, got '" + text + "'");
  return v;
}

Args ParseArgs(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--compare") { a.compare = true; continue; }
    if (i + 1 >= argc) Die("missing value for " + flag);
    std::string v = argv[++i];
    if (flag == "--model") a.model = v;
    else if (flag == "--device") a.device = v;
    else if (flag == "--dtypes") a.dtypes = absl::StrSplit(v, ',');
    else if (flag == "--batches") {
      a.batches.clear();
      for (auto part : absl::StrSplit(v, ',')) a.batches.push_back(ToInt(flag, std::string(part)));
    } else if (flag == "--size") a.size = ToInt(flag, v);
    else if (flag == "--steps") a.steps = ToInt(flag, v);
    else if (flag == "--runs") a.runs = ToInt(flag, v);
    else if (flag == "--json") a.json_out = v;
    else if (flag == "--channels-last") a.channels_last = v != "0";
    else if (flag == "--cuda-graphs") a.cuda_graphs = v != "0";
    else if (flag == "--fused-kernels") a.fused_kernels = v != "0";
    else if (flag == "--decode-batch") a.decode_batch = v == "0" ? 0 : ToInt(flag, v);
    else if (flag == "--cfg") {
      if (!absl::SimpleAtod(v, &a.cfg) || a.cfg < 0) Die("--cfg: expected a non-negative number, got '" + v + "'");
    } else if (flag == "--sampler") a.sampler = v;
    else if (flag == "--schedule") a.schedule = v;
    else if (flag == "--lora-rank") a.lora_rank = ToInt(flag, v);
    else Die("unknown flag " + flag);
  }
  return a;
}

double Gb(uint64_t bytes) { return bytes / 1e9; }

template <typename T>
T Parsed(const absl::StatusOr<T>& value, const std::string& flag) {
  if (!value.ok()) Die(flag + ": " + std::string(value.status().message()));
  return *value;
}

struct Row {
  std::string path, dtype;
  int batch = 0;
  bool ok = false;
  std::string error;
  sf::Timings median;
  sf::MemoryStats memory;
  double first_merge_ms = 0;   // the warm-up's merge of the first LoRA
  double lora_switch_ms = 0;   // merging the second LoRA in place of the first
};

Row Measure(sf::Engine& engine, const std::string& path, const std::string& dtype, int batch,
            const Args& a) {
  Row row{path, dtype, batch};
  sf::BatchRequest request;
  request.width = request.height = a.size;
  request.steps = a.steps;
  request.cfg = a.cfg;
  request.sampler = Parsed(sf::ParseSampler(a.sampler), "--sampler");
  request.schedule = Parsed(sf::ParseSchedule(a.schedule), "--schedule");
  if (!a.loras.empty()) request.loras = {a.loras[0]};
  for (int i = 0; i < batch; ++i) {
    request.images.push_back({"a pixel art knight with a sword, 16-bit sprite", std::string("blurry"),
                              static_cast<uint64_t>(1000 + i)});
  }
  std::vector<sf::BatchResult> results;
  for (int run = 0; run <= a.runs; ++run) {  // run 0 is the warm-up (graph capture, autotuning)
    auto result = engine.Generate(request);
    if (!result.ok()) {
      row.error = std::string(result.status().message());
      return row;
    }
    if (run == 0) row.first_merge_ms = result->timings.lora_ms;
    if (run > 0) results.push_back(std::move(*result));
  }
  if (a.loras.size() > 1) {  // one job with the first LoRA, the next with another
    request.loras = {a.loras[1]};
    auto switched = engine.Generate(request);
    if (!switched.ok()) {
      row.error = std::string(switched.status().message());
      return row;
    }
    row.lora_switch_ms = switched->timings.lora_ms;
    request.loras = {a.loras[0]};
    if (auto back = engine.Generate(request); back.ok()) row.lora_switch_ms = std::max(row.lora_switch_ms, back->timings.lora_ms);
  }
  std::sort(results.begin(), results.end(), [](const auto& x, const auto& y) {
    return x.timings.total_ms < y.timings.total_ms;
  });
  const sf::BatchResult& mid = results[results.size() / 2];
  row.ok = true;
  row.median = mid.timings;
  for (const auto& r : results) {
    row.memory.peak_allocated_bytes = std::max(row.memory.peak_allocated_bytes, r.memory.peak_allocated_bytes);
    row.memory.peak_reserved_bytes = std::max(row.memory.peak_reserved_bytes, r.memory.peak_reserved_bytes);
  }
  return row;
}

nlohmann::json RowJson(const Row& r, int steps) {
  if (!r.ok) return {{"path", r.path}, {"dtype", r.dtype}, {"batch", r.batch}, {"error", r.error}};
  double per_image_s = r.median.total_ms / 1000.0 / r.batch;
  return {{"path", r.path},
          {"dtype", r.dtype},
          {"batch", r.batch},
          {"encode_ms", r.median.encode_ms},
          {"unet_step_ms", r.median.denoise_ms / steps},
          {"decode_ms", r.median.decode_ms},
          {"decode_ms_per_image", r.median.decode_ms / r.batch},
          {"total_ms", r.median.total_ms},
          {"seconds_per_image", per_image_s},
          {"images_per_minute", 60.0 / per_image_s},
          {"peak_allocated_gb", Gb(r.memory.peak_allocated_bytes)},
          {"peak_reserved_gb", Gb(r.memory.peak_reserved_bytes)},
          {"lora_first_merge_ms", r.first_merge_ms},
          {"lora_switch_ms", r.lora_switch_ms}};
}

void RunPath(const Args& a, const std::string& path, const std::string& dtype, bool fast,
             nlohmann::json& report) {
  sf::LoadOptions load;
  load.model_path = a.model;
  load.device = a.device;
  load.dtype = Parsed(sf::ParseDtype(dtype), "--dtypes");
  load.fast_path = fast;
  load.channels_last = a.channels_last;
  load.cuda_graphs = a.cuda_graphs;
  load.fused_kernels = a.fused_kernels;
  load.decode_batch = a.decode_batch;
  auto engine = sf::Engine::Load(load);
  if (!engine.ok()) Die(std::string(engine.status().message()));
  if (report["device"].is_null()) {
    sf::DeviceInfo info = (*engine)->Device();
    report["device"] = {{"name", info.name}, {"compute_capability", info.compute_capability},
                        {"total_gb", Gb(info.total_bytes)}};
  }
  report["options"] = {{"channels_last", a.channels_last}, {"cuda_graphs", a.cuda_graphs},
                       {"fused_kernels", a.fused_kernels},
                       {"decode_batch", a.decode_batch}};
  report["weights_gb"][path + "_" + dtype] = Gb((*engine)->Memory().weights_bytes);
  for (int batch : a.batches) {
    Row row = Measure(**engine, path, dtype, batch, a);
    nlohmann::json j = RowJson(row, a.steps);
    report["results"].push_back(j);
    if (row.ok) {
      std::printf("%-9s %-5s b%-3d encode %7.1f ms  unet step %7.2f ms  decode %7.1f ms/img  "
                  "%6.3f s/img  %6.1f img/min  peak %5.1f GB alloc %5.1f GB reserved\n",
                  path.c_str(), dtype.c_str(), batch, j["encode_ms"].get<double>(),
                  j["unet_step_ms"].get<double>(), j["decode_ms_per_image"].get<double>(),
                  j["seconds_per_image"].get<double>(), j["images_per_minute"].get<double>(),
                  j["peak_allocated_gb"].get<double>(), j["peak_reserved_gb"].get<double>());
      if (!a.loras.empty()) {
        std::printf("          LoRA rank %d: first merge %.0f ms, switch to another %.0f ms\n", a.lora_rank,
                    row.first_merge_ms, row.lora_switch_ms);
      }
    } else {
      std::printf("%-9s %-5s b%-3d failed: %s\n", path.c_str(), dtype.c_str(), batch, row.error.c_str());
    }
    std::fflush(stdout);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Args a = ParseArgs(argc, argv);
  if (a.lora_rank > 0) {
    for (int i = 0; i < 2; ++i) {
      const std::string path = absl::StrCat("/tmp/spriteforge-bench-lora-r", a.lora_rank, "-", i, ".safetensors");
      auto bytes = spriteforge::bench::WriteRandomSdxlLora(path, a.lora_rank, 17 + i);
      if (!bytes.ok()) Die(std::string(bytes.status().message()));
      std::printf("random LoRA rank %d: %s (%.0f MB)\n", a.lora_rank, path.c_str(), *bytes / 1e6);
      a.loras.push_back({path, 1.0});
    }
  }
  nlohmann::json report = {{"model", a.model}, {"size", a.size}, {"steps", a.steps},
                           {"runs", a.runs}, {"device", nullptr}, {"cfg", a.cfg},
                           {"sampler", a.sampler}, {"schedule", a.schedule}, {"lora_rank", a.lora_rank},
                           {"results", nlohmann::json::array()}};
  if (const char* commit = std::getenv("SPRITEFORGE_COMMIT")) report["commit"] = commit;
  if (const char* driver = std::getenv("SPRITEFORGE_DRIVER")) report["driver"] = driver;
  if (a.compare) RunPath(a, "baseline", "fp32", /*fast=*/false, report);
  for (const std::string& dtype : a.dtypes) RunPath(a, "optimized", dtype, /*fast=*/true, report);
  if (!a.json_out.empty()) std::ofstream(a.json_out) << report.dump(2) << "\n";
  return 0;
}
