#include "common/manifest.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/manifest_files.h"
#include "common/sampling.h"
#include "common/sprite/control/pose_library.h"
#include "common/sprite/spec.h"
#include "common/status_macros.h"
#include "common/text.h"
#include "common/yaml_check.h"

namespace spriteforge {
namespace {

// Errors carry "file:line: field: problem".
class Errors {
 public:
  explicit Errors(std::string file) : file_(std::move(file)) {}
  absl::Status At(const YAML::Node& node, const std::string& field, const std::string& problem) const {
    return AtLine(node.IsDefined() ? node.Mark().line + 1 : 0, field, problem);
  }
  absl::Status AtLine(int line, const std::string& field, const std::string& problem) const {
    return absl::InvalidArgumentError(absl::StrCat(file_, line > 0 ? absl::StrCat(":", line) : "", ": ",
                                                   field, ": ", problem));
  }

 private:
  std::string file_;
};

absl::Status OnlyKeys(const YAML::Node& map, const std::set<std::string>& allowed, const std::string& where,
                      const Errors& err) {
  for (const auto& kv : map) {
    const std::string key = kv.first.as<std::string>();
    if (!allowed.count(key)) return err.At(kv.first, where.empty() ? key : where + "." + key, "unknown field");
  }
  return absl::OkStatus();
}

template <typename T>
absl::Status Read(const YAML::Node& node, const std::string& field, const Errors& err, T& out) {
  try {
    out = node.as<T>();
    return absl::OkStatus();
  } catch (const YAML::Exception&) {
    return err.At(node, field, "has the wrong type");
  }
}

// Prompts are limited in characters (not bytes); line breaks and tabs are fine in them.
std::string PromptProblem(const std::string& text, const ManifestLimits& lim) {
  return TextProblem(text, lim.max_prompt_chars, "\t\n\r");
}

// Where an item's start image and strength came from, for the checks made once the item's
// size is known.
// (Lines, not YAML nodes: assigning a yaml-cpp node rebinds the node it was copied from.)
struct Img2ImgSource {
  int image_line = 0;
  std::string image_field;
  int width = 0, height = 0;
  int strength_line = 0;  // set by the item itself (not by the defaults); 0: not set
  std::string strength_field;
};

absl::StatusOr<ManifestFile> Resolve(const YAML::Node& node, const std::string& field, const Errors& err,
                                     const FileResolver& files, ManifestFileKind kind, std::string* path) {
  RETURN_IF_ERROR(Read(node, field, err, *path));
  if (path->empty()) return err.At(node, field, "must not be empty");
  if (!files) {
    return err.At(node, field, "files given by path must be uploaded: submit the manifest with the spriteforge client");
  }
  auto file = files(*path, kind);
  if (!file.ok()) return err.At(node, field, std::string(file.status().message()));
  return file;
}

// Resolves a path the manifest implies rather than writes (a model folder's config.json);
// errors point at the field that named the folder.
absl::StatusOr<ManifestFile> ResolvePath(const YAML::Node& node, const std::string& field, const Errors& err,
                                         const FileResolver& files, ManifestFileKind kind, const std::string& path) {
  if (!files) {
    return err.At(node, field, "files given by path must be uploaded: submit the manifest with the spriteforge client");
  }
  auto file = files(path, kind);
  if (!file.ok()) return err.At(node, field, std::string(file.status().message()));
  return file;
}

// A control image given as a file, checked against the item's size once that is known.
struct ControlImageSource {
  int line = 0;
  std::string field;
  int width = 0, height = 0;
};

// An item's settings while they are read: defaults, then overrides, then the item.
struct Settings {
  v1::ImageParams image;
  v1::SamplingParams sampling;
  std::optional<double> strength;  // img2img: set by the manifest (checked once the item is known)
  double tcd_gamma = 0.3;
  std::vector<ControlImageSource> control_sources;
};

// Model references: a value with a '/' or ending in .safetensors is a path (uploaded with
// the job), anything else a name in the workers' folders.
bool IsModelPath(const std::string& value) {
  return value.find('/') != std::string::npos || absl::EndsWith(value, ".safetensors");
}

// The name a model path goes by in messages and sidecars: its folder's or file's stem.
std::string ModelPathName(const std::string& path) {
  std::string trimmed = path;
  while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
  return std::filesystem::path(trimmed).stem().string();
}

absl::StatusOr<std::string> ReadModelName(const YAML::Node& node, const std::string& field, const Errors& err,
                                          const char* folder_flag) {
  std::string name;
  RETURN_IF_ERROR(Read(node, field, err, name));
  if (!IsSafeName(name)) {
    return err.At(node, field, absl::StrCat("must be a name in the workers' ", folder_flag,
                                            " (A-Z a-z 0-9 . _ -) or a path (with a '/', or a .safetensors file)"));
  }
  return name;
}

// A diffusers model given by path: a folder (`weights` and config.json in it) or the
// .safetensors file itself with config.json beside it. Returns the two uploaded hashes.
absl::StatusOr<std::pair<std::string, std::string>> ResolveModelFolder(const YAML::Node& node, const std::string& field,
                                                                       const Errors& err, const FileResolver& files,
                                                                       const std::string& path,
                                                                       const std::string& weights) {
  std::string dir = path;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  std::string weights_path = absl::StrCat(dir, "/", weights);
  if (absl::EndsWith(dir, ".safetensors")) {
    weights_path = dir;
    const std::string parent = std::filesystem::path(dir).parent_path().string();
    dir = parent.empty() ? "." : parent;
  }
  ASSIGN_OR_RETURN(auto w, ResolvePath(node, field, err, files, ManifestFileKind::kWeights, weights_path));
  ASSIGN_OR_RETURN(auto c, ResolvePath(node, field, err, files, ManifestFileKind::kConfig, dir + "/config.json"));
  return std::make_pair(w.sha256, c.sha256);
}

absl::Status ReadUnitInterval(const YAML::Node& map, const char* key, const std::string& where, const Errors& err,
                              double* out) {
  if (!map[key]) return absl::OkStatus();
  RETURN_IF_ERROR(Read(map[key], where + "." + key, err, *out));
  if (!(*out >= 0 && *out <= 1)) return err.At(map[key], where + "." + key, "must be 0..1 (a share of the steps)");
  return absl::OkStatus();
}

absl::Status ReadScale(const YAML::Node& map, const std::string& where, const Errors& err, double* out) {
  if (!map["scale"]) return absl::OkStatus();
  RETURN_IF_ERROR(Read(map["scale"], where + ".scale", err, *out));
  if (!(std::isfinite(*out) && *out >= 0 && *out <= 5)) return err.At(map["scale"], where + ".scale", "must be 0..5");
  return absl::OkStatus();
}

// The built-in pose sets, read once (they ship with the programs and do not change).
const std::vector<std::pair<std::string, std::vector<control::NamedPose>>>& BuiltinPoses() {
  static const auto* sets = [] {
    auto* out = new std::vector<std::pair<std::string, std::vector<control::NamedPose>>>();
    for (const std::string& set : control::ListPoseSets()) {
      auto poses = control::LoadBuiltinPoseSet(set);
      if (poses.ok()) out->emplace_back(set, std::move(*poses));
    }
    return out;
  }();
  return *sets;
}

// "builtin:walk-8dir/walk_s_0" for a pose written "walk_s_0" or in that full form; empty
// when no built-in set has it.
std::string QualifiedPoseName(const std::string& written) {
  const size_t slash = written.rfind('/');
  const std::string set = slash == std::string::npos ? "" : written.substr(0, slash);
  const std::string name = slash == std::string::npos ? written : written.substr(slash + 1);
  for (const auto& [set_name, poses] : BuiltinPoses()) {
    if (!set.empty() && set != set_name) continue;
    for (const control::NamedPose& pose : poses) {
      if (pose.name == name) return absl::StrCat(set_name, "/", name);
    }
  }
  return "";
}

std::string PoseSetNames() {
  std::string names;
  for (const auto& [set, poses] : BuiltinPoses()) absl::StrAppend(&names, names.empty() ? "" : ", ", set);
  return names.empty() ? "none installed" : names;
}

absl::Status ReadControlImage(const YAML::Node& entry, const std::string& f, const Errors& err,
                              const FileResolver& files, v1::ControlImage* out, Settings& p) {
  const int given = (entry["image"] ? 1 : 0) + (entry["pose"] ? 1 : 0) + (entry["canny"] ? 1 : 0);
  if (given != 1) return err.At(entry, f, "needs exactly one of image (a PNG), pose (a pose name or .json file) or canny");
  if (entry["image"]) {
    std::string path;
    ASSIGN_OR_RETURN(auto file, Resolve(entry["image"], f + ".image", err, files, ManifestFileKind::kImage, &path));
    out->set_image_sha256(file.sha256);
    p.control_sources.push_back({entry["image"].Mark().line + 1, f + ".image", file.width, file.height});
  } else if (entry["pose"]) {
    std::string pose;
    RETURN_IF_ERROR(Read(entry["pose"], f + ".pose", err, pose));
    if (absl::EndsWith(pose, ".json")) {
      std::string path;
      ASSIGN_OR_RETURN(auto file, Resolve(entry["pose"], f + ".pose", err, files, ManifestFileKind::kConfig, &path));
      out->set_pose_sha256(file.sha256);
    } else {
      const std::string qualified = QualifiedPoseName(pose);
      if (qualified.empty()) {
        return err.At(entry["pose"], f + ".pose",
                      absl::StrCat("unknown pose '", pose, "' (built-in sets: ", PoseSetNames(), "; or a .json file)"));
      }
      out->set_pose(qualified);
    }
  } else {
    const YAML::Node canny = entry["canny"];
    if (!canny.IsMap()) return err.At(canny, f + ".canny", "must be a mapping {image: FILE, low: 100, high: 200}");
    RETURN_IF_ERROR(OnlyKeys(canny, {"image", "low", "high"}, f + ".canny", err));
    if (!canny["image"]) return err.At(canny, f + ".canny.image", "is required");
    std::string path;
    ASSIGN_OR_RETURN(auto file, Resolve(canny["image"], f + ".canny.image", err, files, ManifestFileKind::kImage, &path));
    auto* c = out->mutable_canny();
    c->set_image_sha256(file.sha256);
    int low = 100, high = 200;  // the thresholds ControlNet's canny examples use
    if (canny["low"]) RETURN_IF_ERROR(Read(canny["low"], f + ".canny.low", err, low));
    if (canny["high"]) RETURN_IF_ERROR(Read(canny["high"], f + ".canny.high", err, high));
    if (!(low >= 0 && low <= high && high <= 1020)) {
      return err.At(canny, f + ".canny", absl::StrCat("needs 0 <= low <= high <= 1020, got low ", low, ", high ", high));
    }
    c->set_low(low);
    c->set_high(high);
    p.control_sources.push_back({canny["image"].Mark().line + 1, f + ".canny.image", file.width, file.height});
  }
  return absl::OkStatus();
}

// A ControlNet model (by name or uploaded) with its scale and active share of the steps.
absl::Status ReadControlNet(const YAML::Node& entry, const std::string& f, const Errors& err,
                            const FileResolver& files, v1::ControlNetRef* net) {
  if (!entry["model"]) return err.At(entry, f + ".model", "is required (a ControlNet in the workers' --controlnet-dir, or a path)");
  std::string model;
  RETURN_IF_ERROR(Read(entry["model"], f + ".model", err, model));
  if (IsModelPath(model)) {
    ASSIGN_OR_RETURN(auto hashes, ResolveModelFolder(entry["model"], f + ".model", err, files, model,
                                                     "diffusion_pytorch_model.safetensors"));
    net->set_name(ModelPathName(model));
    net->set_sha256(hashes.first);
    net->set_config_sha256(hashes.second);
  } else {
    ASSIGN_OR_RETURN(auto name, ReadModelName(entry["model"], f + ".model", err, "--controlnet-dir"));
    net->set_name(name);
  }
  double scale = 1.0, start = 0.0, end = 1.0;
  RETURN_IF_ERROR(ReadScale(entry, f, err, &scale));
  RETURN_IF_ERROR(ReadUnitInterval(entry, "start", f, err, &start));
  RETURN_IF_ERROR(ReadUnitInterval(entry, "end", f, err, &end));
  if (!(start < end)) {
    return err.At(entry["start"] ? entry["start"] : entry, f + ".start",
                  absl::StrCat("must be below end (", start, " >= ", end, "): the ControlNet would act on no step"));
  }
  net->set_scale(scale);
  net->set_start(start);
  net->set_end(end);
  return absl::OkStatus();
}

absl::Status ReadControls(const YAML::Node& node, const std::string& field, const ManifestLimits& lim,
                          const Errors& err, const FileResolver& files, Settings& p) {
  if (!node.IsSequence()) return err.At(node, field, "must be a list of {model, image | pose | canny, scale, start, end}");
  if (node.size() > lim.max_controls) return err.At(node, field, absl::StrCat("holds more than ", lim.max_controls, " ControlNets"));
  p.sampling.clear_controlnets();
  p.image.clear_controls();
  p.control_sources.clear();
  for (size_t i = 0; i < node.size(); ++i) {
    const YAML::Node entry = node[i];
    const std::string f = absl::StrCat(field, "[", i, "]");
    if (!entry.IsMap()) return err.At(entry, f, "must be a mapping {model, image | pose | canny, scale, start, end}");
    RETURN_IF_ERROR(OnlyKeys(entry, {"model", "image", "pose", "canny", "scale", "start", "end"}, f, err));
    RETURN_IF_ERROR(ReadControlNet(entry, f, err, files, p.sampling.add_controlnets()));
    RETURN_IF_ERROR(ReadControlImage(entry, f, err, files, p.image.add_controls(), p));
  }
  return absl::OkStatus();
}

// `reference: {images: [FILE...], adapter, encoder?, scale}`. The encoder: a name in the
// workers' --ip-adapter-dir (default image_encoder) for an adapter given by name; for an
// uploaded adapter, the folder `image_encoder` beside it unless `encoder` says otherwise.
absl::Status ReadReference(const YAML::Node& node, const std::string& f, const ManifestLimits& lim,
                           const Errors& err, const FileResolver& files, Settings& p) {
  if (!node.IsMap()) return err.At(node, f, "must be a mapping {images: [FILE, ...], adapter, encoder, scale}");
  RETURN_IF_ERROR(OnlyKeys(node, {"images", "adapter", "encoder", "scale"}, f, err));
  const YAML::Node images = node["images"];
  if (!images || !images.IsSequence() || images.size() == 0) {
    return err.At(images ? images : node, f + ".images", "must be a non-empty list of PNG files");
  }
  if (images.size() > lim.max_reference_images) {
    return err.At(images, f + ".images", absl::StrCat("holds more than ", lim.max_reference_images, " images"));
  }
  p.image.clear_reference_sha256();
  for (size_t i = 0; i < images.size(); ++i) {
    std::string path;
    ASSIGN_OR_RETURN(auto file, Resolve(images[i], absl::StrCat(f, ".images[", i, "]"), err, files,
                                        ManifestFileKind::kImage, &path));
    p.image.add_reference_sha256(file.sha256);
  }
  if (!node["adapter"]) return err.At(node, f + ".adapter", "is required (an IP-Adapter in the workers' --ip-adapter-dir, or a path)");
  v1::IpAdapterRef ip;
  std::string adapter;
  RETURN_IF_ERROR(Read(node["adapter"], f + ".adapter", err, adapter));
  const bool uploaded = IsModelPath(adapter);
  if (uploaded) {
    std::string path;
    ASSIGN_OR_RETURN(auto file, Resolve(node["adapter"], f + ".adapter", err, files, ManifestFileKind::kWeights, &path));
    ip.set_name(ModelPathName(adapter));
    ip.set_sha256(file.sha256);
  } else {
    ASSIGN_OR_RETURN(auto name, ReadModelName(node["adapter"], f + ".adapter", err, "--ip-adapter-dir"));
    ip.set_name(LoraStem(name));
  }
  std::string encoder;
  if (node["encoder"]) RETURN_IF_ERROR(Read(node["encoder"], f + ".encoder", err, encoder));
  const YAML::Node encoder_at = node["encoder"] ? node["encoder"] : node["adapter"];
  if (encoder.empty() && uploaded) {
    const std::string parent = std::filesystem::path(adapter).parent_path().string();
    encoder = (parent.empty() ? "." : parent) + "/image_encoder";
  }
  if (IsModelPath(encoder)) {
    ASSIGN_OR_RETURN(auto hashes, ResolveModelFolder(encoder_at, f + ".encoder", err, files, encoder, "model.safetensors"));
    ip.set_encoder(ModelPathName(encoder));
    ip.set_encoder_sha256(hashes.first);
    ip.set_encoder_config_sha256(hashes.second);
  } else if (!encoder.empty()) {
    ASSIGN_OR_RETURN(auto name, ReadModelName(node["encoder"], f + ".encoder", err, "--ip-adapter-dir"));
    ip.set_encoder(name);
  }
  double scale = 1.0;
  RETURN_IF_ERROR(ReadScale(node, f, err, &scale));
  ip.set_scale(scale);
  *p.sampling.mutable_ip_adapter() = std::move(ip);
  return absl::OkStatus();
}

absl::Status ReadLoras(const YAML::Node& node, const std::string& field, const ManifestLimits& lim,
                       const Errors& err, const FileResolver& files,
                       google::protobuf::RepeatedPtrField<v1::LoraRef>* out) {
  if (!node.IsSequence()) return err.At(node, field, "must be a list of {name: NAME} or {path: FILE}, each with an optional strength");
  if (node.size() > lim.max_loras) return err.At(node, field, absl::StrCat("holds more than ", lim.max_loras, " LoRAs"));
  out->Clear();
  for (size_t i = 0; i < node.size(); ++i) {
    const YAML::Node entry = node[i];
    const std::string f = absl::StrCat(field, "[", i, "]");
    if (!entry.IsMap()) return err.At(entry, f, "must be a mapping {name: NAME} or {path: FILE}");
    if (auto s = OnlyKeys(entry, {"name", "path", "strength"}, f, err); !s.ok()) return s;
    if (!entry["name"] == !entry["path"]) return err.At(entry, f, "needs exactly one of name (in the workers' LoRA folder) or path (uploaded)");
    v1::LoraRef lora;
    lora.set_strength(1.0);
    if (entry["name"]) {
      std::string name;
      RETURN_IF_ERROR(Read(entry["name"], f + ".name", err, name));
      lora.set_name(LoraStem(name));
      if (!IsSafeName(lora.name())) {
        return err.At(entry["name"], f + ".name",
                      "must be a file name of the workers' LoRA folder: A-Z a-z 0-9 . _ -, no folders");
      }
    } else {
      std::string path;
      ASSIGN_OR_RETURN(auto file, Resolve(entry["path"], f + ".path", err, files, ManifestFileKind::kLora, &path));
      lora.set_name(std::filesystem::path(path).stem().string());
      lora.set_sha256(file.sha256);
    }
    if (entry["strength"]) {
      double strength = 0;
      RETURN_IF_ERROR(Read(entry["strength"], f + ".strength", err, strength));
      if (!(std::isfinite(strength) && std::abs(strength) <= 10)) {
        return err.At(entry["strength"], f + ".strength", "must be -10..10");
      }
      lora.set_strength(strength);
    }
    *out->Add() = std::move(lora);
  }
  return absl::OkStatus();
}

// The keys of LoRAs, img2img and few-step sampling, allowed in defaults, overrides and items.
absl::Status ApplyWorkflow(const YAML::Node& map, const std::string& where, const ManifestLimits& lim,
                           const Errors& err, const FileResolver& files, Settings& p, Img2ImgSource* src) {
  if (map["lora"]) {
    RETURN_IF_ERROR(ReadLoras(map["lora"], where + ".lora", lim, err, files, p.sampling.mutable_loras()));
  }
  if (map["init_image"]) {
    std::string path;
    ASSIGN_OR_RETURN(auto file, Resolve(map["init_image"], where + ".init_image", err, files, ManifestFileKind::kImage, &path));
    p.image.set_init_image_sha256(file.sha256);
    src->image_line = map["init_image"].Mark().line + 1;
    src->image_field = where + ".init_image";
    src->width = file.width;
    src->height = file.height;
  }
  if (map["strength"]) {
    double strength = 0;
    RETURN_IF_ERROR(Read(map["strength"], where + ".strength", err, strength));
    if (!(strength > 0 && strength <= 1)) return err.At(map["strength"], where + ".strength", "must be in (0, 1]");
    p.strength = strength;
    src->strength_line = map["strength"].Mark().line + 1;
    src->strength_field = where + ".strength";
  }
  if (map["tcd_gamma"]) {
    RETURN_IF_ERROR(Read(map["tcd_gamma"], where + ".tcd_gamma", err, p.tcd_gamma));
    if (!(p.tcd_gamma >= 0 && p.tcd_gamma <= 1)) return err.At(map["tcd_gamma"], where + ".tcd_gamma", "must be 0..1");
  }
  if (map["controls"]) RETURN_IF_ERROR(ReadControls(map["controls"], where + ".controls", lim, err, files, p));
  if (map["reference"]) RETURN_IF_ERROR(ReadReference(map["reference"], where + ".reference", lim, err, files, p));
  return absl::OkStatus();
}

// Applies the defaults/overrides keys in `map` onto `p`, checking each against the limits.
absl::Status ApplySettings(const YAML::Node& map, const std::string& where, const ManifestLimits& lim,
                           const Errors& err, const FileResolver& files, Settings& p,
                           std::optional<std::string>* negative, Img2ImgSource* src) {
  if (!map.IsMap()) return err.At(map, where, "must be a mapping");
  if (auto s = OnlyKeys(map, {"width", "height", "steps", "cfg", "sampler", "schedule", "negative", "tileable",
                              "lora", "init_image", "strength", "tcd_gamma", "controls", "reference"},
                        where, err); !s.ok()) {
    return s;
  }
  RETURN_IF_ERROR(ApplyWorkflow(map, where, lim, err, files, p, src));
  for (const char* key : {"width", "height"}) {
    if (!map[key]) continue;
    int v = 0;
    RETURN_IF_ERROR(Read(map[key], where + "." + key, err, v));
    if (v < lim.min_size || v > lim.max_size || v % 8 != 0) {
      return err.At(map[key], where + "." + key,
                    absl::StrCat("must be a multiple of 8 in ", lim.min_size, "..", lim.max_size));
    }
    if (std::string(key) == "width") p.sampling.set_width(v);
    else p.sampling.set_height(v);
  }
  if (map["steps"]) {
    int steps = 0;
    RETURN_IF_ERROR(Read(map["steps"], where + ".steps", err, steps));
    if (steps < 1 || steps > lim.max_steps) return err.At(map["steps"], where + ".steps", absl::StrCat("must be 1..", lim.max_steps));
    p.sampling.set_steps(steps);
  }
  if (map["cfg"]) {
    double cfg = 0;
    RETURN_IF_ERROR(Read(map["cfg"], where + ".cfg", err, cfg));
    if (!(cfg >= 0 && cfg <= lim.max_cfg)) return err.At(map["cfg"], where + ".cfg", absl::StrCat("must be 0..", lim.max_cfg));
    p.sampling.set_cfg(cfg);
  }
  if (map["sampler"]) {
    std::string name;
    RETURN_IF_ERROR(Read(map["sampler"], where + ".sampler", err, name));
    auto sampler = ParseSampler(name);
    if (!sampler.ok()) return err.At(map["sampler"], where + ".sampler", absl::StrCat("must be ", SamplerNames()));
    p.sampling.set_sampler(*sampler);
  }
  if (map["schedule"]) {
    std::string name;
    RETURN_IF_ERROR(Read(map["schedule"], where + ".schedule", err, name));
    auto schedule = ParseSchedule(name);
    if (!schedule.ok()) return err.At(map["schedule"], where + ".schedule", absl::StrCat("must be ", ScheduleNames()));
    p.sampling.set_schedule(*schedule);
  }
  if (map["tileable"]) {
    bool tileable = false;
    RETURN_IF_ERROR(Read(map["tileable"], where + ".tileable", err, tileable));
    p.sampling.set_tileable(tileable);
  }
  if (map["negative"]) {
    std::string text;
    RETURN_IF_ERROR(Read(map["negative"], where + ".negative", err, text));
    if (auto problem = PromptProblem(text, lim); !problem.empty()) return err.At(map["negative"], where + ".negative", problem);
    *negative = text;
  }
  return absl::OkStatus();
}

// Checks that need the item's final settings; fills in img2img's default strength.
// Checks that need the item's final settings; sets what applies to the item (img2img's
// strength, with A1111's default, and tcd's gamma) and leaves the rest at zero.
absl::Status CheckWorkflow(const YAML::Node& item, const std::string& where, const Errors& err, Settings& p,
                           const Img2ImgSource& src) {
  v1::SamplingParams& s = p.sampling;
  if (absl::Status pair = CheckSamplerSchedule(s.sampler(), s.schedule()); !pair.ok()) {
    return err.At(item, where + ".schedule", std::string(pair.message()));
  }
  if (s.sampler() == v1::SAMPLER_TCD) s.set_tcd_gamma(p.tcd_gamma);
  for (const ControlImageSource& c : p.control_sources) {
    // As the worker resizes control images (control/resize.h): the item's aspect ratio, to
    // within whole-pixel rounding.
    const bool fits = std::llround(static_cast<double>(c.width) * s.height() / s.width()) == c.height ||
                      std::llround(static_cast<double>(c.height) * s.width() / s.height()) == c.width;
    if (!fits) {
      return err.AtLine(c.line, c.field,
                        absl::StrCat("is ", c.width, "x", c.height, ", not the item's aspect ratio (", s.width(), "x",
                                     s.height(), "): crop it or set width and height to match"));
    }
  }
  if (p.image.init_image_sha256().empty()) {
    if (src.strength_line > 0) return err.AtLine(src.strength_line, src.strength_field, "needs init_image (img2img)");
    return absl::OkStatus();
  }
  if (src.width != s.width() || src.height != s.height()) {
    return err.AtLine(src.image_line, src.image_field,
                  absl::StrCat("is ", src.width, "x", src.height, " but the item is ", s.width(), "x", s.height(),
                               " (set width and height to the image's size)"));
  }
  s.set_strength(p.strength.value_or(0.75));  // A1111's img2img default
  return absl::OkStatus();
}

// A pose of a set's expansion: its full name for the worker and its own for the image.
struct SetPose {
  std::string qualified;  // "builtin:walk-8dir/walk_s_0"
  std::string name;       // "walk_s_0"
  std::string direction;
};

absl::StatusOr<std::vector<SetPose>> ReadSetPoses(const YAML::Node& node, const std::string& f, const Errors& err) {
  auto whole_set = [&](const std::string& set, std::vector<SetPose>* out) {
    for (const auto& [set_name, poses] : BuiltinPoses()) {
      if (set_name != set) continue;
      for (const control::NamedPose& pose : poses) out->push_back({set + "/" + pose.name, pose.name, pose.direction});
      return true;
    }
    return false;
  };
  std::vector<SetPose> out;
  if (node.IsScalar()) {
    std::string set;
    RETURN_IF_ERROR(Read(node, f, err, set));
    if (!whole_set(set, &out)) return err.At(node, f, absl::StrCat("unknown pose set '", set, "' (", PoseSetNames(), ")"));
    return out;
  }
  if (!node.IsSequence() || node.size() == 0) return err.At(node, f, "must be a pose set (builtin:walk-8dir) or a list of pose names");
  for (size_t i = 0; i < node.size(); ++i) {
    std::string written;
    RETURN_IF_ERROR(Read(node[i], absl::StrCat(f, "[", i, "]"), err, written));
    if (whole_set(written, &out)) continue;
    const std::string qualified = QualifiedPoseName(written);
    if (qualified.empty()) {
      return err.At(node[i], absl::StrCat(f, "[", i, "]"),
                    absl::StrCat("unknown pose '", written, "' (built-in sets: ", PoseSetNames(), ")"));
    }
    const std::string name = qualified.substr(qualified.rfind('/') + 1);
    std::string direction;
    for (const auto& [set_name, poses] : BuiltinPoses()) {
      for (const control::NamedPose& pose : poses) {
        if (absl::StrCat(set_name, "/", pose.name) == qualified) direction = pose.direction;
      }
    }
    out.push_back({qualified, name, direction});
  }
  return out;
}

// `set: {poses, directions?, model, scale?, start?, end?, reference?}`: the item once per
// pose, in the set's order, each with the pose's ControlNet first and named
// <name>_<pose> ("hero_walk_s_0"; the pose's name alone without an item name).
absl::StatusOr<std::vector<Settings>> ExpandSet(const YAML::Node& set, const std::string& f, const std::string& name,
                                                const ManifestLimits& lim, const Errors& err,
                                                const FileResolver& files, const Settings& item) {
  if (!set.IsMap()) return err.At(set, f, "must be a mapping {poses, directions, model, scale, start, end, reference}");
  RETURN_IF_ERROR(OnlyKeys(set, {"poses", "directions", "model", "scale", "start", "end", "reference"}, f, err));
  if (!set["poses"]) return err.At(set, f + ".poses", "is required (builtin:walk-8dir, or a list of pose names)");
  ASSIGN_OR_RETURN(auto poses, ReadSetPoses(set["poses"], f + ".poses", err));
  if (const YAML::Node dirs = set["directions"]) {
    static const std::set<std::string> kDirections = {"s", "sw", "w", "nw", "n", "ne", "e", "se"};
    if (!dirs.IsSequence() || dirs.size() == 0) return err.At(dirs, f + ".directions", "must be a list of s sw w nw n ne e se");
    std::set<std::string> wanted;
    for (size_t i = 0; i < dirs.size(); ++i) {
      std::string d;
      RETURN_IF_ERROR(Read(dirs[i], absl::StrCat(f, ".directions[", i, "]"), err, d));
      if (!kDirections.count(d)) {
        return err.At(dirs[i], absl::StrCat(f, ".directions[", i, "]"), absl::StrCat("unknown direction '", d, "' (s sw w nw n ne e se)"));
      }
      wanted.insert(d);
    }
    std::vector<SetPose> kept;
    for (SetPose& pose : poses) {
      if (wanted.count(pose.direction)) kept.push_back(std::move(pose));
    }
    if (kept.empty()) return err.At(dirs, f + ".directions", "leaves none of the set's poses");
    poses = std::move(kept);
  }
  if (item.sampling.controlnets_size() + 1 > static_cast<int>(lim.max_controls)) {
    return err.At(set, f, absl::StrCat("with the item's controls makes more than ", lim.max_controls, " ControlNets"));
  }
  Settings base = item;
  if (set["reference"]) RETURN_IF_ERROR(ReadReference(set["reference"], f + ".reference", lim, err, files, base));
  v1::ControlNetRef net;
  RETURN_IF_ERROR(ReadControlNet(set, f, err, files, &net));
  std::vector<Settings> out;
  for (const SetPose& pose : poses) {
    Settings p = base;
    p.sampling.clear_controlnets();
    p.image.clear_controls();
    *p.sampling.add_controlnets() = net;
    p.image.add_controls()->set_pose(pose.qualified);
    for (const auto& c : base.sampling.controlnets()) *p.sampling.add_controlnets() = c;
    for (const auto& c : base.image.controls()) *p.image.add_controls() = c;
    p.image.set_name(name.empty() ? pose.name : absl::StrCat(name, "_", pose.name));
    out.push_back(std::move(p));
  }
  return out;
}

nlohmann::json ToJson(const YAML::Node& node) {
  if (node.IsMap()) {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& kv : node) j[kv.first.as<std::string>()] = ToJson(kv.second);
    return j;
  }
  if (node.IsSequence()) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& v : node) j.push_back(ToJson(v));
    return j;
  }
  if (node.IsNull()) return nullptr;
  const std::string s = node.Scalar();
  if (node.Tag() == "!") return s;  // quoted: a string
  bool b;
  long long i;
  double d;
  if (YAML::convert<bool>::decode(node, b) && (s == "true" || s == "false")) return b;
  if (YAML::convert<long long>::decode(node, i)) return i;
  if (YAML::convert<double>::decode(node, d)) return d;
  return s;
}

// yaml-cpp refuses JSON's escape of a character beyond the Basic Multilingual Plane, a
// UTF-16 surrogate pair ("\ud83d\ude00"), which JSON writers emit for emoji. In a JSON
// document (every string double-quoted, so every backslash starts an escape) each pair is
// written as its UTF-8 character before parsing; line numbers stay as they were.
bool HexAt(const std::string& text, size_t at, unsigned* out) {
  if (at + 4 > text.size()) return false;
  *out = 0;
  for (size_t i = at; i < at + 4; ++i) {
    const char c = text[i];
    const int digit = c >= '0' && c <= '9'   ? c - '0'
                      : c >= 'a' && c <= 'f' ? c - 'a' + 10
                      : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                             : -1;
    if (digit < 0) return false;
    *out = *out * 16 + static_cast<unsigned>(digit);
  }
  return true;
}

std::string JoinSurrogatePairs(const std::string& text) {
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos || text[first] != '{' || text.find("\\u") == std::string::npos) return text;
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\\' || i + 1 == text.size()) {
      out += text[i];
      continue;
    }
    unsigned high = 0, low = 0;
    if (text[i + 1] == 'u' && HexAt(text, i + 2, &high) && high >= 0xD800 && high <= 0xDBFF &&
        text.compare(i + 6, 2, "\\u") == 0 && HexAt(text, i + 8, &low) && low >= 0xDC00 && low <= 0xDFFF) {
      const unsigned code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
      out += static_cast<char>(0xF0 | (code >> 18));
      out += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (code & 0x3F));
      i += 11;
      continue;
    }
    out += text[i];  // any other escape, "\\" included, is kept whole
    out += text[++i];
  }
  return out;
}

}  // namespace

std::string ModelNameProblem(const std::string& model) {
  if (IsSafeName(model)) return "";
  return "must be 1..128 characters of A-Z a-z 0-9 . _ - and not start with '.' or '-'";
}

ManifestImage ExpandImage(const ManifestEntry& entry, int k, const std::function<uint64_t()>& draw_seed) {
  ManifestImage image;
  image.index = entry.first_index + k;
  image.image = entry.image;
  image.sampling = entry.sampling;
  image.random_seed = !entry.seed;
  image.image.set_seed(entry.seed ? *entry.seed + k : draw_seed());
  return image;
}

absl::StatusOr<Manifest> ParseManifest(const std::string& text, const std::string& file,
                                       const std::function<uint64_t()>& draw_seed, const ManifestLimits& lim,
                                       const FileResolver& files) {
  auto m = ParseManifestEntries(text, file, lim, files);
  if (!m.ok()) return m;
  m->images.reserve(m->image_count);
  for (const ManifestEntry& entry : m->entries) {
    for (int k = 0; k < entry.count; ++k) m->images.push_back(ExpandImage(entry, k, draw_seed));
  }
  return m;
}

absl::StatusOr<Manifest> ParseManifestEntries(const std::string& original, const std::string& file,
                                              const ManifestLimits& lim, const FileResolver& files) {
  Errors err(file);
  const std::string text = JoinSurrogatePairs(original);
  if (text.size() > lim.max_file_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": manifest is ", text.size(), " bytes; the limit is ", lim.max_file_bytes));
  }
  // Aliases, depth and duplicate keys are judged on the parse events, before any code
  // walks the loaded tree (where a recursive alias would recurse forever).
  RETURN_IF_ERROR(CheckYamlShape(text, file, lim.yaml));
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    return absl::InvalidArgumentError(absl::StrCat(file, ":", e.mark.line + 1, ": not valid YAML or JSON: ", e.msg));
  }
  if (!root.IsMap()) return absl::InvalidArgumentError(absl::StrCat(file, ": the manifest must be a mapping"));
  if (auto s = OnlyKeys(root, {"name", "model", "priority", "defaults", "items", "postprocess", "preview_every"}, "", err); !s.ok()) return s;

  Manifest m;
  for (const char* key : {"name", "model"}) {
    if (!root[key]) return err.At(root, key, "is required");
    std::string& out = std::string(key) == "name" ? m.name : m.model;
    RETURN_IF_ERROR(Read(root[key], key, err, out));
    if (out.empty()) return err.At(root[key], key, "must not be empty");
  }
  if (auto problem = TextProblem(m.name, lim.max_name_chars); !problem.empty()) return err.At(root["name"], "name", problem);
  if (auto problem = ModelNameProblem(m.model); !problem.empty()) return err.At(root["model"], "model", problem);
  if (root["priority"]) {
    RETURN_IF_ERROR(Read(root["priority"], "priority", err, m.priority));
  }
  if (root["preview_every"]) {
    RETURN_IF_ERROR(Read(root["preview_every"], "preview_every", err, m.preview_every));
    if (m.preview_every < 0 || m.preview_every > lim.max_steps) {
      return err.At(root["preview_every"], "preview_every",
                    absl::StrCat("must be 0 (no previews) to ", lim.max_steps, " steps, got ", m.preview_every));
    }
  }
  Settings defaults;
  defaults.sampling.set_width(1024);
  defaults.sampling.set_height(1024);
  defaults.sampling.set_steps(30);
  defaults.sampling.set_cfg(5.0);
  defaults.sampling.set_sampler(v1::SAMPLER_EULER);
  defaults.sampling.set_schedule(v1::SCHEDULE_NORMAL);
  std::optional<std::string> default_negative;
  Img2ImgSource default_src;
  if (root["defaults"]) {
    if (auto s = ApplySettings(root["defaults"], "defaults", lim, err, files, defaults, &default_negative, &default_src);
        !s.ok()) {
      return s;
    }
  }
  default_src.strength_line = 0;  // a default strength applies to img2img items only
  if (const YAML::Node section = root["postprocess"]) {
    if (!section.IsMap()) return err.At(section, "postprocess", "must be a mapping");
    const nlohmann::json json = ToJson(section);
    if (const size_t bytes = json.dump().size(); bytes > lim.max_postprocess_bytes) {
      return err.At(section, "postprocess",
                    absl::StrCat("is ", bytes, " bytes as JSON; the limit is ", lim.max_postprocess_bytes));
    }
    std::string bad_key;
    auto spec = postprocess::ParsePostprocessSpec(json, &bad_key);
    if (!spec.ok()) {
      // The message names the field ("postprocess.palette: ..."); the line is its key's.
      const YAML::Node at = !bad_key.empty() && section[bad_key] ? section[bad_key] : section;
      return absl::InvalidArgumentError(absl::StrCat(file, ":", at.Mark().line + 1, ": ", spec.status().message()));
    }
    m.postprocess = std::move(*spec);
  }
  const YAML::Node items = root["items"];
  if (!items || !items.IsSequence() || items.size() == 0) return err.At(items ? items : root, "items", "must be a non-empty list");
  for (size_t i = 0; i < items.size(); ++i) {
    const YAML::Node item = items[i];
    const std::string where = absl::StrCat("items[", i, "]");
    if (!item.IsMap()) return err.At(item, where, "must be a mapping");
    if (auto s = OnlyKeys(item, {"prompt", "negative", "count", "seed", "overrides", "lora", "init_image", "strength",
                                 "tcd_gamma", "controls", "reference", "name", "set"},
                          where, err); !s.ok()) {
      return s;
    }
    Settings p = defaults;
    Img2ImgSource src = default_src;
    std::optional<std::string> negative = default_negative;
    if (!item["prompt"]) return err.At(item, where + ".prompt", "is required");
    std::string prompt;
    RETURN_IF_ERROR(Read(item["prompt"], where + ".prompt", err, prompt));
    if (auto problem = PromptProblem(prompt, lim); !problem.empty()) return err.At(item["prompt"], where + ".prompt", problem);
    p.image.set_prompt(prompt);
    if (item["overrides"]) {
      if (auto s = ApplySettings(item["overrides"], where + ".overrides", lim, err, files, p, &negative, &src); !s.ok()) {
        return s;
      }
    }
    RETURN_IF_ERROR(ApplyWorkflow(item, where, lim, err, files, p, &src));
    RETURN_IF_ERROR(CheckWorkflow(item, where, err, p, src));
    std::string name;
    if (item["name"]) {
      RETURN_IF_ERROR(Read(item["name"], where + ".name", err, name));
      if (!IsSafeName(name)) return err.At(item["name"], where + ".name", "must be 1..128 characters of A-Z a-z 0-9 . _ -");
      p.image.set_name(name);
    }
    if (item["negative"]) {
      std::string text;
      RETURN_IF_ERROR(Read(item["negative"], where + ".negative", err, text));
        if (auto problem = PromptProblem(text, lim); !problem.empty()) return err.At(item["negative"], where + ".negative", problem);
      negative = text;
    }
    if (negative) p.image.set_negative(*negative);
    int count = 1;
    if (item["count"]) {
      RETURN_IF_ERROR(Read(item["count"], where + ".count", err, count));
      if (count < 1 || count > lim.max_count_per_item) {
        return err.At(item["count"], where + ".count", absl::StrCat("must be 1..", lim.max_count_per_item));
      }
    }
    std::optional<uint64_t> seed;
    if (item["seed"]) {
      uint64_t s64 = 0;
      RETURN_IF_ERROR(Read(item["seed"], where + ".seed", err, s64));
      seed = s64;
    }
    std::vector<Settings> expanded;
    if (item["set"]) {
      ASSIGN_OR_RETURN(expanded, ExpandSet(item["set"], where + ".set", name, lim, err, files, p));
    } else {
      expanded.push_back(std::move(p));
    }
    for (Settings& e : expanded) {
      if (m.image_count + count > lim.max_images_per_job) {
        return err.At(item, where + ".count", absl::StrCat("the job would exceed ", lim.max_images_per_job, " images"));
      }
      m.entries.push_back({std::move(e.image), std::move(e.sampling), count, seed, static_cast<int>(m.image_count)});
      m.image_count += count;
    }
  }
  return m;
}

}  // namespace spriteforge
