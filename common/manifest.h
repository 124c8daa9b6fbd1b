// Batch job manifests (YAML or JSON, one schema) and their expansion into one item per
// image. Validation names the file, line and field, and rejects the whole manifest.
//
//   name: potions
//   model: tiny-sdxl
//   priority: 0
//   defaults: {width: 128, height: 128, steps: 4, cfg: 5.0, sampler: euler, schedule: normal}
//   items:
//     - {prompt: "red potion bottle icon", count: 12, seed: 100}
//     - {prompt: "a knight", negative: "blurry", count: 2, overrides: {steps: 8}}
//     - {prompt: "a knight, pixel art", lora: [{name: pixel-art-xl, strength: 0.8}],
//        init_image: sketches/knight.png, strength: 0.6}
//   postprocess: {palette: pico8, ...}   # checked here, kept as a v1::PostprocessSpec
//   preview_every: 5     # a small preview of each image every 5 sampling steps (0: none)
//
// `lora`, `init_image`, `strength` and `tcd_gamma` may stand in `defaults`, in an item's
// `overrides` or in the item itself; an item's `lora` list replaces the defaults' list.
// So do ControlNets and an IP-Adapter (docs/workflows.md, "Consistent sprite sets"):
//   controls: [{model: openpose, pose: walk_s_0, scale: 0.9, start: 0, end: 0.75},
//              {model: ./controlnets/canny, canny: {image: edges.png, low: 100, high: 200}},
//              {model: depth, image: depth.png}]
//   reference: {images: [hero.png], adapter: ip-adapter-plus_sdxl_vit-h, encoder: image_encoder, scale: 0.6}
// A `model`/`adapter`/`encoder` with a '/' or ending in .safetensors is a path (uploaded),
// anything else a name in the workers' --controlnet-dir / --ip-adapter-dir. An item's
// `set: {poses: builtin:walk-8dir, directions: [s, w], model: openpose, scale, start, end}`
// becomes one entry per pose, in the pose set's order, each named <item name>_<pose name>
// ("hero_walk_s_0") and steered by its pose (the set's ControlNet first, then `controls`).
// A set's `reference: {first: true, adapter, encoder, scale}` makes its first pose without
// a reference and every other pose with the first pose's result as the reference picture
// (image k of each pose: image k of the first).
// Settings become the API's messages here, once: v1::SamplingParams (what a batch shares,
// with the settings that do not apply left at zero), v1::ImageParams (prompt, negative,
// seed, start image) and v1::PostprocessSpec.
// Files given by path are read through a FileResolver: the client reads and uploads them,
// the coordinator looks up what was uploaded; without one, paths are refused.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/generation_info.h"
#include "common/yaml_check.h"
#include "spriteforge/v1/spriteforge.pb.h"

namespace spriteforge {

struct ManifestLimits {
  int min_size = 64, max_size = 2048;  // pixels, multiples of 8
  int max_steps = 150;
  double max_cfg = 30;
  int max_count_per_item = 10000;
  int max_images_per_job = 100000;
  size_t max_prompt_chars = 1000;     // characters (code points), not bytes
  size_t max_name_chars = 200;
  size_t max_file_bytes = 1 << 20;
  size_t max_postprocess_bytes = 16 << 10;  // the section as JSON; it travels with every batch of the job
  size_t max_loras = 8;               // per image
  size_t max_controls = 4;            // ControlNets per image
  size_t max_reference_images = 4;
  YamlLimits yaml;                    // depth, alias expansion
};

struct ManifestImage {
  int index = 0;              // from 0 in manifest order
  v1::ImageParams image;      // with its seed
  v1::SamplingParams sampling;
  bool random_seed = false;   // the seed was drawn, not given (and is recorded here)
};

// One manifest item: `count` images from one set of parameters, with seeds from `seed` up
// (or drawn when it is absent), numbered from `first_index`.
struct ManifestEntry {
  v1::ImageParams image;      // seed unset
  v1::SamplingParams sampling;
  int count = 1;
  std::optional<uint64_t> seed;
  int first_index = 0;
  // A set's `reference: {first: true}`: image k of this entry takes the result of the job's
  // image reference_from + k as its IP-Adapter reference (ImageParams.reference_from_index);
  // -1: none.
  int reference_from = -1;
};

struct Manifest {
  std::string name;
  std::string model;
  int priority = 0;
  int preview_every = 0;  // sampling steps between previews; 0: none
  std::optional<v1::PostprocessSpec> postprocess;
  std::vector<ManifestEntry> entries;
  int64_t image_count = 0;
  std::vector<ManifestImage> images;  // filled by ParseManifest, not by ParseManifestEntries
};

// kWeights: a .safetensors model (ControlNet, IP-Adapter, image encoder); kConfig: a JSON
// file (a model's config.json, a pose).
enum class ManifestFileKind { kLora, kImage, kWeights, kConfig };

// A file a manifest names by path, as the resolver found it.
struct ManifestFile {
  std::string sha256;
  uint64_t size = 0;
  int width = 0, height = 0;  // images only
};

// Path as written in the manifest -> the file; an error is one line naming the problem
// (the parser adds file, line and field).
using FileResolver = std::function<absl::StatusOr<ManifestFile>(const std::string& path, ManifestFileKind kind)>;

// "" for a model name that is safe in lookups, paths and logs, else the problem.
std::string ModelNameProblem(const std::string& model);

// `draw_seed` supplies seeds for items without one (the caller records them).
absl::StatusOr<Manifest> ParseManifest(const std::string& text, const std::string& file_name,
                                       const std::function<uint64_t()>& draw_seed,
                                       const ManifestLimits& limits = {}, const FileResolver& files = nullptr);

// The same checks without expanding images: a large job's images are made one chunk at a
// time with ExpandImage, so memory does not grow with the job.
absl::StatusOr<Manifest> ParseManifestEntries(const std::string& text, const std::string& file_name,
                                              const ManifestLimits& limits = {}, const FileResolver& files = nullptr);
// The k-th image of an entry.
ManifestImage ExpandImage(const ManifestEntry& entry, int k, const std::function<uint64_t()>& draw_seed);

}  // namespace spriteforge
