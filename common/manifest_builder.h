// The one typed form every request becomes before it is a job. YAML/JSON manifests
// (ParseManifest), the HTTP dialects (A1111 txt2img, OpenAI images) and any later import
// fill an EntryBuilder per item and a ManifestBuilder per job; each setter checks its value
// against ManifestLimits, so a field is checked once, in one wording, whatever form it came
// in. Errors name the field as the form wrote it:
//   manifest: "potions.yaml:7: items[0].steps: must be 1..150"
//   A1111:    "steps: must be 1..150", "alwayson_scripts.controlnet.args[0].weight: must be 0..5"
// Reading a form (types, unknown keys, required keys, its own names and ranges of sliders)
// stays with its reader; what a value may be is decided here.
//
// A new request field is added here (a setter, and its check in Build when it depends on
// other fields), then read by each form that has it.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "common/manifest.h"
#include "common/sprite/control/pose_library.h"

namespace spriteforge {

// Where a value was written: its field path and, in a manifest file, its line (0: none).
struct FieldRef {
  std::string path;
  int line = 0;
};

// "origin:line: path: problem", the origin (a manifest's file name) and line left out when
// absent: the dialects' errors read "path: problem".
class FieldErrors {
 public:
  explicit FieldErrors(std::string origin = "") : origin_(std::move(origin)) {}
  absl::Status At(const FieldRef& field, const std::string& problem) const;
  // A message that already names its field ("postprocess.palette: ..."), at a line.
  absl::Status AtLine(int line, const std::string& message) const;
  const std::string& origin() const { return origin_; }

 private:
  std::string origin_;
};

// One item's settings: the manifest defaults until set. Copying a builder copies what was
// set so far (a manifest's defaults become each item's start). Every setter returns its
// error and keeps the first one for Build, so a reader may check each call or only Build.
class EntryBuilder {
 public:
  explicit EntryBuilder(const ManifestLimits& limits, FileResolver files = nullptr, std::string origin = "");

  // Text
  absl::Status SetPrompt(const FieldRef& at, const std::string& prompt);
  absl::Status SetNegative(const FieldRef& at, const std::string& negative);
  absl::Status SetName(const FieldRef& at, const std::string& name);  // the image's name in results
  // Sampling
  absl::Status SetWidth(const FieldRef& at, int64_t width);
  absl::Status SetHeight(const FieldRef& at, int64_t height);
  absl::Status SetSteps(const FieldRef& at, int64_t steps);
  absl::Status SetCfg(const FieldRef& at, double cfg);
  absl::Status SetSampler(const FieldRef& at, const std::string& name);  // spriteforge's names (SamplerNames)
  absl::Status SetSchedule(const FieldRef& at, const std::string& name);
  void SetTileable(bool tileable);
  absl::Status SetTcdGamma(const FieldRef& at, double gamma);  // used by tcd only
  // Opt-in speed-ups that change pixels: CFG only inside a share of the steps (an error for
  // start >= end is at `start_at`; kept only with cfg > 1), and deep cache every N steps.
  absl::Status SetGuidanceInterval(const FieldRef& start_at, double start, const FieldRef& end_at, double end);
  absl::Status SetDeepCache(const FieldRef& at, int64_t every);
  // Images: `count` from one setting, seeds from `seed` up (drawn per image when unset).
  absl::Status SetCount(const FieldRef& at, int64_t count);
  void SetSeed(uint64_t seed) { seed_ = seed; }
  // img2img: an uploaded start image (its size must be the item's) and the share of noise.
  absl::Status SetInitImage(const FieldRef& at, const std::string& path);
  absl::Status SetStrength(const FieldRef& at, double strength);
  // A strength set so far applies to img2img items only (a manifest's defaults).
  void KeepStrengthAsDefault() { strength_at_.reset(); }

  // LoRAs: a list replaces the list before; a LoRA by name is in the workers' LoRA folder,
  // by path uploaded. The strength applies to the LoRA added last.
  absl::Status ClearLoras(const FieldRef& list, size_t count);
  absl::Status AddLoraByName(const FieldRef& at, const std::string& name);
  absl::Status AddLoraByPath(const FieldRef& at, const std::string& path);
  absl::Status SetLoraStrength(const FieldRef& at, double strength);

  // ControlNets: a list replaces the list before. AddControlNet names the model (a name in
  // the workers' --controlnet-dir, or a path: a folder or .safetensors file with its
  // config.json); the other setters apply to the ControlNet added last, which must get
  // exactly one picture: an image (at the item's aspect ratio), a pose or Canny edges.
  absl::Status ClearControls(const FieldRef& list, size_t count);
  absl::Status AddControlNet(const FieldRef& control_at, const FieldRef& model_at, const std::string& model);
  absl::Status SetControlScale(const FieldRef& at, double scale);
  // Start and end shares of the steps; an error for start >= end is at `start_at`.
  absl::Status SetControlSpan(const FieldRef& start_at, double start, const FieldRef& end_at, double end);
  absl::Status SetControlGuessMode(const FieldRef& at, bool on);
  absl::Status SetControlImage(const FieldRef& at, const std::string& path);
  absl::Status SetControlPose(const FieldRef& at, const std::string& pose);  // a built-in pose, or a .json file
  absl::Status SetControlCanny(const FieldRef& image_at, const std::string& path, const FieldRef& thresholds_at,
                               int low, int high);

  // IP-Adapter: reference pictures (a list replaces the list before) and the adapter, by
  // name in the workers' --ip-adapter-dir or by path; its image encoder by name, by path,
  // or (empty, for an uploaded adapter) the folder image_encoder beside it.
  absl::Status ClearReferenceImages(const FieldRef& list, size_t count);
  absl::Status AddReferenceImage(const FieldRef& at, const std::string& path);
  absl::Status SetIpAdapter(const FieldRef& adapter_at, const std::string& adapter, const FieldRef& encoder_at,
                            const std::string& encoder);
  absl::Status SetIpAdapterScale(const FieldRef& at, double scale);
  // No IP-Adapter and no reference pictures (a set's first pose under `reference: {first: true}`).
  void ClearIpAdapter();
  // The reference picture is the result of the job's image `first_index` (image k of this
  // entry: first_index + k), made before it; replaces the reference images set so far.
  // Build requires the IP-Adapter.
  void SetReferenceFromImage(int first_index);

  // A pose set's expansion: the pose's ControlNet before those set so far, and the name.
  void PrependControl(const v1::ControlNetRef& net, const v1::ControlImage& picture);
  void SetExpandedName(const std::string& name) { image_.set_name(name); }

  const v1::ImageParams& image() const { return image_; }
  const v1::SamplingParams& sampling() const { return sampling_; }
  const FieldErrors& errors() const { return err_; }
  const ManifestLimits& limits() const { return limits_; }

  // The checks that need every field (sampler with schedule, picture sizes against the
  // item's, strength without a start image; errors at `item`), with only the settings
  // that apply kept; the first error of any setter otherwise.
  absl::StatusOr<ManifestEntry> Build(const FieldRef& item) const;

 private:
  absl::Status Fail(const FieldRef& at, const std::string& problem);
  absl::StatusOr<ManifestFile> Resolve(const FieldRef& at, const std::string& path, ManifestFileKind kind);
  absl::Status AddPicture(const FieldRef& at);
  absl::Status SetScale(const FieldRef& at, double scale, double* out);

  // A file's pixel size, checked against the item's once that is known.
  struct Picture {
    FieldRef at;
    int width = 0, height = 0;
  };

  ManifestLimits limits_;
  FileResolver files_;
  FieldErrors err_;
  absl::Status first_error_;
  v1::ImageParams image_;
  v1::SamplingParams sampling_;
  int count_ = 1;
  std::optional<uint64_t> seed_;
  double tcd_gamma_ = 0.3;
  std::optional<double> strength_;
  std::optional<FieldRef> strength_at_;  // set by the item itself, not by the defaults
  std::optional<Picture> init_image_;
  std::vector<Picture> control_pictures_;
  std::vector<FieldRef> controls_at_;       // each ControlNet's own field
  std::vector<int> pictures_per_control_;  // for "exactly one"
  int reference_from_ = -1;                 // SetReferenceFromImage
};

// A job: its own fields and its entries, numbered in the order they are added.
class ManifestBuilder {
 public:
  explicit ManifestBuilder(const ManifestLimits& limits, std::string origin = "");
  absl::Status SetName(const FieldRef& at, const std::string& name);
  absl::Status SetModel(const FieldRef& at, const std::string& model);
  void SetPriority(int priority) { manifest_.priority = priority; }
  absl::Status SetPreviewEvery(const FieldRef& at, int64_t steps);
  // The `postprocess` section as JSON; `line_of` gives a key's line for the error.
  absl::Status SetPostprocess(const FieldRef& at, const nlohmann::json& section,
                              const std::function<int(const std::string& key)>& line_of = nullptr);
  // Builds the entry (its errors at `item`) and adds it; an error at `count_at` when the
  // job would pass max_images_per_job.
  absl::Status AddEntry(const FieldRef& item, const FieldRef& count_at, const EntryBuilder& entry);
  // An entry an EntryBuilder built before (first_index is set here).
  absl::Status AddEntry(const FieldRef& count_at, ManifestEntry entry);
  absl::StatusOr<Manifest> Build() const;
  // The index the next entry's first image will have.
  int next_index() const { return static_cast<int>(manifest_.image_count); }

 private:
  absl::Status Fail(const FieldRef& at, const std::string& problem);

  ManifestLimits limits_;
  FieldErrors err_;
  absl::Status first_error_;
  Manifest manifest_;
};

// Built-in poses by set, "builtin:walk-8dir/walk_s_0" for a pose written "walk_s_0" (empty
// when no set has it), and the sets' names for messages.
const std::vector<std::pair<std::string, std::vector<control::NamedPose>>>& BuiltinPoses();
std::string QualifiedPoseName(const std::string& written);
std::string PoseSetNames();

}  // namespace spriteforge
