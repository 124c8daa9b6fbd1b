// spriteforge-bench: end-to-end SDXL throughput and memory on one device, through the
// same public engine API the worker uses. With no weights available it builds the full
// SDXL-base architecture with random weights ("builtin:sdxl-base"): speed and memory do
// not depend on weight values.
//
//   spriteforge-bench [--model builtin:sdxl-base] [--device cuda] [--dtypes fp16,bf16,fp8]
//                     [--batches 1,4,8,16] [--size 1024] [--steps 30] [--runs 2]
//                     [--compare] [--channels-last 0|1] [--cuda-graphs 0|1] [--fused-kernels 0|1]
//                     [--decode-batch N (0: as memory allows)] [--vae-dtype D] [--vae-channels-last 0|1] [--json OUT.json]
//                     [--cfg 5] [--sampler euler] [--schedule normal] [--lora-rank R]
//                     [--controlnet PATH]... [--ip-adapter FILE --image-encoder DIR]
//                     [--controls-set DIR] [--write-controls DIR]
//                     [--speedups] [--guidance-interval S,E] [--deep-cache N]
//
// --lora-rank R merges a random rank-R LoRA over every transformer Linear of the UNet (the
// shape of SDXL-Lightning's) and, after the timed runs, switches to a second one: the
// switch's merge time is reported. With --cfg 1 each image takes one UNet pass a step.
// --controlnet (repeatable) and --ip-adapter with --image-encoder measure every batch with
// those: each image gets a pose of builtin:walk-8dir as its control image and one of two
// reference pictures. --write-controls DIR writes random ControlNets (full and small), an
// IP-Adapter Plus and its ViT-H encoder for --model's architecture into DIR and exits;
// --controls-set DIR then measures, per dtype and in this order, no controls, the full
// ControlNet, the small one, the IP-Adapter Plus, and the full ControlNet with the adapter,
// and reports each one's time per image against the first.
// --speedups measures, in this order, the exact path, CFG only inside --guidance-interval
// (default 0,0.5), deep cache every --deep-cache steps (default 3) and both, each with its
// time per image and its largest and mean pixel difference (0..255) against the exact
// path's images of the same seeds. Without --speedups, --guidance-interval and --deep-cache
// apply to every batch measured.
// --compare also runs the baseline (fp32, NCHW, no CUDA graphs, no cuDNN autotuning) in
// the same process, so the two paths are measured on the same card minutes apart.
// Timings come from the engine (device-synchronised at phase boundaries); each
// configuration is warmed up once before the timed runs, and the median run is reported.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/sprite/control/pose.h"
#include "common/sprite/control/pose_library.h"
#include "spriteforge/engine/engine.h"
#include "worker/engine/bench/random_controls.h"
#include "worker/engine/bench/random_lora.h"

namespace sf = spriteforge::engine;
namespace bench = spriteforge::bench;

namespace {

// What a batch is conditioned on beyond its prompts.
struct Controls {
  std::string name = "none";
  std::vector<std::string> controlnets;
  std::optional<sf::IpAdapterSpec> ip_adapter;
  double overhead_target = 0;  // the most its time per image may exceed "none" by (0: none set)
  bool guess_mode = false;      // the ControlNets in guess mode (the prompts' CFG half only)
  // Speed-ups that change pixels (BatchRequest): compared with the first variant's images.
  double guidance_start = 0, guidance_end = 1;
  int deep_cache = 0;
};

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
  bool vae_channels_last = true;
  std::string vae_dtype;  // empty: the model's
  std::string json_out;
  double cfg = 5.0;
  std::string sampler = "euler";
  std::string schedule = "normal";
  int lora_rank = 0;
  std::vector<sf::LoraSpec> loras;  // the random LoRAs written for --lora-rank: [the one timed, the switch]
  std::vector<std::string> controlnets;
  std::string ip_adapter, image_encoder;
  std::string controls_set, write_controls;
  std::vector<Controls> variants;  // measured in this order for every dtype and batch
  bool speedups = false;
  double guidance_start = 0, guidance_end = 0.5;
  int deep_cache = 3;
  bool guidance_given = false, deep_cache_given = false;  // without --speedups: applied to every batch
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
    if (flag == "--speedups") { a.speedups = true; continue; }
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
    else if (flag == "--vae-dtype") a.vae_dtype = v;
    else if (flag == "--vae-channels-last") a.vae_channels_last = v != "0";
    else if (flag == "--cfg") {
      if (!absl::SimpleAtod(v, &a.cfg) || a.cfg < 0) Die("--cfg: expected a non-negative number, got '" + v + "'");
    } else if (flag == "--sampler") a.sampler = v;
    else if (flag == "--schedule") a.schedule = v;
    else if (flag == "--lora-rank") a.lora_rank = ToInt(flag, v);
    else if (flag == "--controlnet") a.controlnets.push_back(v);
    else if (flag == "--ip-adapter") a.ip_adapter = v;
    else if (flag == "--image-encoder") a.image_encoder = v;
    else if (flag == "--controls-set") a.controls_set = v;
    else if (flag == "--write-controls") a.write_controls = v;
    else if (flag == "--deep-cache") a.deep_cache = ToInt(flag, v), a.deep_cache_given = true;
    else if (flag == "--guidance-interval") {
      std::vector<std::string> parts = absl::StrSplit(v, ',');
      if (parts.size() != 2 || !absl::SimpleAtod(parts[0], &a.guidance_start) || !absl::SimpleAtod(parts[1], &a.guidance_end)) {
        Die("--guidance-interval: expected START,END (shares of the steps), got '" + v + "'");
      }
      a.guidance_given = true;
    }
    else Die("unknown flag " + flag);
  }
  if (a.ip_adapter.empty() != a.image_encoder.empty()) Die("--ip-adapter and --image-encoder go together");
  if (a.speedups && (!a.controls_set.empty() || !a.controlnets.empty() || !a.ip_adapter.empty())) {
    Die("--speedups measures the plain path: leave out --controls-set, --controlnet and --ip-adapter");
  }
  if (!a.controls_set.empty() && (!a.controlnets.empty() || !a.ip_adapter.empty())) {
    Die("--controls-set measures its own ControlNets and IP-Adapter: leave out --controlnet and --ip-adapter");
  }
  return a;
}

// The targets: a full ControlNet adds at most 35% to the time per image, a small one 15%,
// IP-Adapter Plus 5% (its image tokens are computed once per batch).
std::vector<Controls> ControlsVariants(const Args& a) {
  if (a.speedups) {
    Controls interval{absl::StrCat("guidance-", a.guidance_start, "-", a.guidance_end)};
    interval.guidance_start = a.guidance_start;
    interval.guidance_end = a.guidance_end;
    Controls deep{absl::StrCat("deep-cache-", a.deep_cache)};
    deep.deep_cache = a.deep_cache;
    Controls both = interval;
    both.name += "+" + deep.name;
    both.deep_cache = a.deep_cache;
    return {Controls{"exact"}, interval, deep, both};
  }
  if (a.controls_set.empty()) {
    Controls only;
    only.controlnets = a.controlnets;
    if (!a.ip_adapter.empty()) only.ip_adapter = sf::IpAdapterSpec{a.ip_adapter, a.image_encoder, 0.6};
    if (!only.controlnets.empty() || only.ip_adapter) only.name = "controls";
    if (a.guidance_given) only.guidance_start = a.guidance_start, only.guidance_end = a.guidance_end;
    if (a.deep_cache_given) only.deep_cache = a.deep_cache;
    return {only};
  }
  const std::string nets = absl::StrCat(a.controls_set, "/", bench::kControlNetDir, "/");
  const std::string adapters = absl::StrCat(a.controls_set, "/", bench::kIpAdapterDir, "/");
  const sf::IpAdapterSpec plus{absl::StrCat(adapters, bench::kIpAdapterPlus, ".safetensors"),
                               adapters + bench::kImageEncoder, 0.6};
  return {Controls{"none"},
          Controls{"controlnet-full", {nets + bench::kFullControlNet}, std::nullopt, 0.35},
          Controls{"controlnet-full-guess-mode", {nets + bench::kFullControlNet}, std::nullopt, 0.35, true},
          Controls{"controlnet-small", {nets + bench::kSmallControlNet}, std::nullopt, 0.15},
          Controls{"ip-adapter-plus", {}, plus, 0.05},
          Controls{"controlnet-full+ip-adapter-plus", {nets + bench::kFullControlNet}, plus, 0}};
}

sf::RgbImage ToRgb(const spriteforge::RasterImage& image) { return {image.width, image.height, image.pixels}; }

// Control image i of a batch: pose i of builtin:walk-8dir drawn at the batch's size (black
// when the pose set cannot be read: the ControlNet's cost does not depend on the picture).
sf::RgbImage PoseImage(int i, int size) {
  static const auto poses = spriteforge::control::LoadBuiltinPoseSet("builtin:walk-8dir");
  if (poses.ok() && !poses->empty()) {
    auto drawn = spriteforge::control::DrawPose((*poses)[i % poses->size()].keypoints, size, size);
    if (drawn.ok()) return ToRgb(*drawn);
  }
  return {size, size, std::vector<uint8_t>(static_cast<size_t>(size) * size * 3, 0)};
}

// Two reference pictures (two characters' looks), 512x512 gradients the encoder resizes.
sf::RgbImage ReferenceImage(int which) {
  constexpr int kSize = 512;
  sf::RgbImage image{kSize, kSize, std::vector<uint8_t>(kSize * kSize * 3)};
  for (int y = 0; y < kSize; ++y) {
    for (int x = 0; x < kSize; ++x) {
      uint8_t* p = &image.rgb[(static_cast<size_t>(y) * kSize + x) * 3];
      p[0] = static_cast<uint8_t>(which ? x / 2 : 255 - y / 2);
      p[1] = static_cast<uint8_t>((x ^ y) & 0xff);
      p[2] = static_cast<uint8_t>(which ? 200 : 40);
    }
  }
  return image;
}

double Gb(uint64_t bytes) { return bytes / 1e9; }

struct PixelDifference {
  int max = 0;
  double mean = 0;
};

// Over every channel of every image pair (8-bit levels).
PixelDifference Difference(const std::vector<std::vector<uint8_t>>& a, const std::vector<std::vector<uint8_t>>& b) {
  PixelDifference d;
  double sum = 0;
  size_t count = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    for (size_t k = 0; k < std::min(a[i].size(), b[i].size()); ++k) {
      const int diff = std::abs(static_cast<int>(a[i][k]) - static_cast<int>(b[i][k]));
      d.max = std::max(d.max, diff);
      sum += diff;
      ++count;
    }
  }
  d.mean = count ? sum / count : 0;
  return d;
}

template <typename T>
T Parsed(const absl::StatusOr<T>& value, const std::string& flag) {
  if (!value.ok()) Die(flag + ": " + std::string(value.status().message()));
  return *value;
}

struct Row {
  std::string path, dtype, controls;
  int batch = 0;
  bool ok = false;
  std::string error;
  sf::Timings median;
  sf::MemoryStats memory;
  double first_merge_ms = 0;   // the warm-up's merge of the first LoRA
  double lora_switch_ms = 0;   // merging the second LoRA in place of the first
  std::vector<std::vector<uint8_t>> images;  // the median run's, 8-bit RGB
};

Row Measure(sf::Engine& engine, const std::string& path, const std::string& dtype, int batch,
            const Args& a, const Controls& controls) {
  Row row{path, dtype, controls.name, batch};
  sf::BatchRequest request;
  request.width = request.height = a.size;
  request.steps = a.steps;
  request.cfg = a.cfg;
  request.float_pixels = false;  // 8-bit images, as the worker asks for them
  request.sampler = Parsed(sf::ParseSampler(a.sampler), "--sampler");
  request.schedule = Parsed(sf::ParseSchedule(a.schedule), "--schedule");
  if (!a.loras.empty()) request.loras = {a.loras[0]};
  for (const std::string& net : controls.controlnets) request.controlnets.push_back({net, 1.0, 0.0, 1.0, controls.guess_mode});
  request.ip_adapter = controls.ip_adapter;
  request.guidance_start = controls.guidance_start;
  request.guidance_end = controls.guidance_end;
  request.deep_cache = controls.deep_cache;
  for (int i = 0; i < batch; ++i) {
    request.images.push_back({"a pixel art knight with a sword, 16-bit sprite", std::string("blurry"),
                              static_cast<uint64_t>(1000 + i)});
    for (size_t j = 0; j < controls.controlnets.size(); ++j) request.images.back().control_images.push_back(PoseImage(i, a.size));
    if (controls.ip_adapter) request.images.back().reference_images = {ReferenceImage(i % 2)};
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
  for (const sf::Image& image : mid.images) row.images.push_back(image.rgb);
  for (const auto& r : results) {
    row.memory.peak_allocated_bytes = std::max(row.memory.peak_allocated_bytes, r.memory.peak_allocated_bytes);
    row.memory.peak_reserved_bytes = std::max(row.memory.peak_reserved_bytes, r.memory.peak_reserved_bytes);
  }
  return row;
}

nlohmann::json RowJson(const Row& r, int steps) {
  if (!r.ok) return {{"path", r.path}, {"dtype", r.dtype}, {"controls", r.controls}, {"batch", r.batch}, {"error", r.error}};
  double per_image_s = r.median.total_ms / 1000.0 / r.batch;
  return {{"path", r.path},
          {"dtype", r.dtype},
          {"controls", r.controls},
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
  load.vae_channels_last = a.vae_channels_last;
  if (!a.vae_dtype.empty()) load.vae_dtype = Parsed(sf::ParseDtype(a.vae_dtype), "--vae-dtype");
  auto engine = sf::Engine::Load(load);
  if (!engine.ok()) Die(std::string(engine.status().message()));
  if (report["device"].is_null()) {
    sf::DeviceInfo info = (*engine)->Device();
    report["device"] = {{"name", info.name}, {"compute_capability", info.compute_capability},
                        {"total_gb", Gb(info.total_bytes)}};
  }
  report["options"] = {{"channels_last", a.channels_last}, {"cuda_graphs", a.cuda_graphs},
                       {"fused_kernels", a.fused_kernels},
                       {"decode_batch", a.decode_batch}, {"vae_channels_last", a.vae_channels_last},
                       {"vae_dtype", a.vae_dtype.empty() ? dtype : a.vae_dtype}};
  report["weights_gb"][path + "_" + dtype] = Gb((*engine)->Memory().weights_bytes);
  std::map<int, double> first_seconds;  // the first variant's time per image, by batch
  std::map<int, std::vector<std::vector<uint8_t>>> first_images;  // and its images
  for (const Controls& controls : a.variants) {
    for (int batch : a.batches) {
      Row row = Measure(**engine, path, dtype, batch, a, controls);
      nlohmann::json j = RowJson(row, a.steps);
      const std::string label = a.variants.size() > 1 || controls.name != "none" ? path + " " + controls.name : path;
      if (row.ok && !first_seconds.count(batch)) {
        first_seconds[batch] = j["seconds_per_image"].get<double>();
        first_images[batch] = row.images;
      }
      if (row.ok && a.speedups && &controls != &a.variants.front() && first_images.count(batch)) {
        const PixelDifference d = Difference(first_images[batch], row.images);
        j["max_pixel_difference"] = d.max;
        j["mean_pixel_difference"] = d.mean;
      }
      if (row.ok && &controls != &a.variants.front() && first_seconds.count(batch)) {
        // Its cost over the first variant (no controls) at the same dtype and batch, same process.
        const double overhead = j["seconds_per_image"].get<double>() / first_seconds[batch] - 1;
        j["overhead"] = overhead;
        j["overhead_against"] = a.variants.front().name;
        if (controls.overhead_target > 0) {
          j["overhead_target"] = controls.overhead_target;
          j["overhead_met"] = overhead <= controls.overhead_target;
        }
      }
      report["results"].push_back(j);
      if (row.ok) {
        std::printf("%-9s %-5s b%-3d encode %7.1f ms  unet step %7.2f ms  decode %7.1f ms/img  "
                    "%6.3f s/img  %6.1f img/min  peak %5.1f GB alloc %5.1f GB reserved\n",
                    label.c_str(), dtype.c_str(), batch, j["encode_ms"].get<double>(),
                    j["unet_step_ms"].get<double>(), j["decode_ms_per_image"].get<double>(),
                    j["seconds_per_image"].get<double>(), j["images_per_minute"].get<double>(),
                    j["peak_allocated_gb"].get<double>(), j["peak_reserved_gb"].get<double>());
        if (!a.loras.empty()) {
          std::printf("          LoRA rank %d: first merge %.0f ms, switch to another %.0f ms\n", a.lora_rank,
                      row.first_merge_ms, row.lora_switch_ms);
        }
        if (j.contains("overhead")) {
          const double overhead = j["overhead"].get<double>();
          std::printf("          %+.1f%% per image over %s", 100 * overhead, a.variants.front().name.c_str());
          if (controls.overhead_target > 0) {
            std::printf(" (target at most %+.0f%%: %s)", 100 * controls.overhead_target,
                        overhead <= controls.overhead_target ? "met" : "MISSED");
          }
          std::printf("\n");
        }
        if (j.contains("max_pixel_difference")) {
          std::printf("          pixels against %s: max %d, mean %.2f (0..255)\n", a.variants.front().name.c_str(),
                      j["max_pixel_difference"].get<int>(), j["mean_pixel_difference"].get<double>());
        }
      } else {
        std::printf("%-9s %-5s b%-3d failed: %s\n", label.c_str(), dtype.c_str(), batch, row.error.c_str());
      }
      std::fflush(stdout);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  Args a = ParseArgs(argc, argv);
  if (!a.write_controls.empty()) {
    const auto start = std::chrono::steady_clock::now();
    auto bytes = bench::WriteRandomControls(a.write_controls, a.model, /*seed=*/29);
    if (!bytes.ok()) Die(std::string(bytes.status().message()));
    std::printf("random ControlNets, IP-Adapter Plus and image encoder for %s in %s (%.2f GB, %.1f s)\n", a.model.c_str(),
                a.write_controls.c_str(), *bytes / 1e9,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    return 0;
  }
  a.variants = ControlsVariants(a);
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
  for (const Controls& c : a.variants) {
    report["controls"].push_back({{"name", c.name}, {"controlnets", c.controlnets},
                                  {"ip_adapter", c.ip_adapter ? c.ip_adapter->adapter_path : ""},
                                  {"image_encoder", c.ip_adapter ? c.ip_adapter->encoder_dir : ""}});
  }
  if (const char* commit = std::getenv("SPRITEFORGE_COMMIT")) report["commit"] = commit;
  if (const char* driver = std::getenv("SPRITEFORGE_DRIVER")) report["driver"] = driver;
  if (a.compare) RunPath(a, "baseline", "fp32", /*fast=*/false, report);
  for (const std::string& dtype : a.dtypes) RunPath(a, "optimized", dtype, /*fast=*/true, report);
  if (!a.json_out.empty()) std::ofstream(a.json_out) << report.dump(2) << "\n";
  return 0;
}
