#include "common/manifest.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/manifest_files.h"
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
  if (auto s = Read(node, field, err, *path); !s.ok()) return s;
  if (path->empty()) return err.At(node, field, "must not be empty");
  if (!files) {
    return err.At(node, field, "files given by path must be uploaded: submit the manifest with the spriteforge client");
  }
  auto file = files(*path, kind);
  if (!file.ok()) return err.At(node, field, std::string(file.status().message()));
  return file;
}

absl::Status ReadLoras(const YAML::Node& node, const std::string& field, const ManifestLimits& lim,
                       const Errors& err, const FileResolver& files, std::vector<LoraUse>* out) {
  if (!node.IsSequence()) return err.At(node, field, "must be a list of {name: NAME} or {path: FILE}, each with an optional strength");
  if (node.size() > lim.max_loras) return err.At(node, field, absl::StrCat("holds more than ", lim.max_loras, " LoRAs"));
  out->clear();
  for (size_t i = 0; i < node.size(); ++i) {
    const YAML::Node entry = node[i];
    const std::string f = absl::StrCat(field, "[", i, "]");
    if (!entry.IsMap()) return err.At(entry, f, "must be a mapping {name: NAME} or {path: FILE}");
    if (auto s = OnlyKeys(entry, {"name", "path", "strength"}, f, err); !s.ok()) return s;
    if (!entry["name"] == !entry["path"]) return err.At(entry, f, "needs exactly one of name (in the workers' LoRA folder) or path (uploaded)");
    LoraUse lora;
    if (entry["name"]) {
      std::string name;
      if (auto s = Read(entry["name"], f + ".name", err, name); !s.ok()) return s;
      lora.name = LoraStem(name);
      if (!IsSafeName(lora.name)) {
        return err.At(entry["name"], f + ".name",
                      "must be a file name of the workers' LoRA folder: A-Z a-z 0-9 . _ -, no folders");
      }
    } else {
      std::string path;
      auto file = Resolve(entry["path"], f + ".path", err, files, ManifestFileKind::kLora, &path);
      if (!file.ok()) return file.status();
      lora.name = std::filesystem::path(path).stem().string();
      lora.sha256 = file->sha256;
    }
    if (entry["strength"]) {
      if (auto s = Read(entry["strength"], f + ".strength", err, lora.strength); !s.ok()) return s;
      if (!(std::isfinite(lora.strength) && std::abs(lora.strength) <= 10)) {
        return err.At(entry["strength"], f + ".strength", "must be -10..10");
      }
    }
    out->push_back(std::move(lora));
  }
  return absl::OkStatus();
}

// The keys of LoRAs, img2img and few-step sampling, allowed in defaults, overrides and items.
absl::Status ApplyWorkflow(const YAML::Node& map, const std::string& where, const ManifestLimits& lim,
                           const Errors& err, const FileResolver& files, GenerationInfo& p, Img2ImgSource* src) {
  if (map["lora"]) {
    if (auto s = ReadLoras(map["lora"], where + ".lora", lim, err, files, &p.loras); !s.ok()) return s;
  }
  if (map["init_image"]) {
    std::string path;
    auto file = Resolve(map["init_image"], where + ".init_image", err, files, ManifestFileKind::kImage, &path);
    if (!file.ok()) return file.status();
    p.init_image = file->sha256;
    src->image_line = map["init_image"].Mark().line + 1;
    src->image_field = where + ".init_image";
    src->width = file->width;
    src->height = file->height;
  }
  if (map["strength"]) {
    double strength = 0;
    if (auto s = Read(map["strength"], where + ".strength", err, strength); !s.ok()) return s;
    if (!(strength > 0 && strength <= 1)) return err.At(map["strength"], where + ".strength", "must be in (0, 1]");
    p.denoising_strength = strength;
    src->strength_line = map["strength"].Mark().line + 1;
    src->strength_field = where + ".strength";
  }
  if (map["tcd_gamma"]) {
    if (auto s = Read(map["tcd_gamma"], where + ".tcd_gamma", err, p.tcd_gamma); !s.ok()) return s;
    if (!(p.tcd_gamma >= 0 && p.tcd_gamma <= 1)) return err.At(map["tcd_gamma"], where + ".tcd_gamma", "must be 0..1");
  }
  return absl::OkStatus();
}

// Applies the defaults/overrides keys in `map` onto `p`, checking each against the limits.
absl::Status ApplySettings(const YAML::Node& map, const std::string& where, const ManifestLimits& lim,
                           const Errors& err, const FileResolver& files, GenerationInfo& p,
                           std::optional<std::string>* negative, Img2ImgSource* src) {
  if (!map.IsMap()) return err.At(map, where, "must be a mapping");
  if (auto s = OnlyKeys(map, {"width", "height", "steps", "cfg", "sampler", "schedule", "negative", "tileable",
                              "lora", "init_image", "strength", "tcd_gamma"},
                        where, err); !s.ok()) {
    return s;
  }
  if (auto s = ApplyWorkflow(map, where, lim, err, files, p, src); !s.ok()) return s;
  for (const char* key : {"width", "height"}) {
    if (!map[key]) continue;
    int v = 0;
    if (auto s = Read(map[key], where + "." + key, err, v); !s.ok()) return s;
    if (v < lim.min_size || v > lim.max_size || v % 8 != 0) {
      return err.At(map[key], where + "." + key,
                    absl::StrCat("must be a multiple of 8 in ", lim.min_size, "..", lim.max_size));
    }
    (std::string(key) == "width" ? p.width : p.height) = v;
  }
  if (map["steps"]) {
    if (auto s = Read(map["steps"], where + ".steps", err, p.steps); !s.ok()) return s;
    if (p.steps < 1 || p.steps > lim.max_steps) return err.At(map["steps"], where + ".steps", absl::StrCat("must be 1..", lim.max_steps));
  }
  if (map["cfg"]) {
    if (auto s = Read(map["cfg"], where + ".cfg", err, p.cfg); !s.ok()) return s;
    if (!(p.cfg >= 0 && p.cfg <= lim.max_cfg)) return err.At(map["cfg"], where + ".cfg", absl::StrCat("must be 0..", lim.max_cfg));
  }
  if (map["sampler"]) {
    if (auto s = Read(map["sampler"], where + ".sampler", err, p.sampler); !s.ok()) return s;
    if (p.sampler != "euler" && p.sampler != "euler_ancestral" && p.sampler != "dpmpp_2m" && p.sampler != "lcm" &&
        p.sampler != "tcd") {
      return err.At(map["sampler"], where + ".sampler", "must be euler, euler_ancestral, dpmpp_2m, lcm or tcd");
    }
  }
  if (map["schedule"]) {
    if (auto s = Read(map["schedule"], where + ".schedule", err, p.schedule); !s.ok()) return s;
    if (p.schedule != "normal" && p.schedule != "trailing" && p.schedule != "sgm_uniform" && p.schedule != "karras") {
      return err.At(map["schedule"], where + ".schedule", "must be normal, trailing, sgm_uniform or karras");
    }
  }
  if (map["tileable"]) {
    if (auto s = Read(map["tileable"], where + ".tileable", err, p.tileable); !s.ok()) return s;
  }
  if (map["negative"]) {
    std::string text;
    if (auto s = Read(map["negative"], where + ".negative", err, text); !s.ok()) return s;
    if (auto problem = PromptProblem(text, lim); !problem.empty()) return err.At(map["negative"], where + ".negative", problem);
    *negative = text;
  }
  return absl::OkStatus();
}

// Checks that need the item's final settings; fills in img2img's default strength.
absl::Status CheckWorkflow(const YAML::Node& item, const std::string& where, const Errors& err, GenerationInfo& p,
                           const Img2ImgSource& src) {
  if ((p.sampler == "lcm" || p.sampler == "tcd") && p.schedule != "normal") {
    return err.At(item, where + ".schedule", absl::StrCat("sampler ", p.sampler, " uses its own timesteps: the schedule must be normal"));
  }
  if (p.init_image.empty()) {
    if (src.strength_line > 0) return err.AtLine(src.strength_line, src.strength_field, "needs init_image (img2img)");
    p.denoising_strength.reset();
    return absl::OkStatus();
  }
  if (src.width != p.width || src.height != p.height) {
    return err.AtLine(src.image_line, src.image_field,
                  absl::StrCat("is ", src.width, "x", src.height, " but the item is ", p.width, "x", p.height,
                               " (set width and height to the image's size)"));
  }
  if (!p.denoising_strength) p.denoising_strength = 0.75;  // A1111's img2img default
  return absl::OkStatus();
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

}  // namespace

std::string ModelNameProblem(const std::string& model) {
  if (IsSafeName(model)) return "";
  return "must be 1..128 characters of A-Z a-z 0-9 . _ - and not start with '.' or '-'";
}

ManifestImage ExpandImage(const ManifestEntry& entry, int k, const std::function<uint64_t()>& draw_seed) {
  ManifestImage image;
  image.index = entry.first_index + k;
  image.params = entry.params;
  image.random_seed = !entry.seed;
  image.params.seed = entry.seed ? *entry.seed + k : draw_seed();
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

absl::StatusOr<Manifest> ParseManifestEntries(const std::string& text, const std::string& file,
                                              const ManifestLimits& lim, const FileResolver& files) {
  Errors err(file);
  if (text.size() > lim.max_file_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": manifest is ", text.size(), " bytes; the limit is ", lim.max_file_bytes));
  }
  // Aliases, depth and duplicate keys are judged on the parse events, before any code
  // walks the loaded tree (where a recursive alias would recurse forever).
  if (auto s = CheckYamlShape(text, file, lim.yaml); !s.ok()) return s;
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    return absl::InvalidArgumentError(absl::StrCat(file, ":", e.mark.line + 1, ": not valid YAML or JSON: ", e.msg));
  }
  if (!root.IsMap()) return absl::InvalidArgumentError(absl::StrCat(file, ": the manifest must be a mapping"));
  if (auto s = OnlyKeys(root, {"name", "model", "priority", "defaults", "items", "postprocess"}, "", err); !s.ok()) return s;

  Manifest m;
  for (const char* key : {"name", "model"}) {
    if (!root[key]) return err.At(root, key, "is required");
    std::string& out = std::string(key) == "name" ? m.name : m.model;
    if (auto s = Read(root[key], key, err, out); !s.ok()) return s;
    if (out.empty()) return err.At(root[key], key, "must not be empty");
  }
  if (auto problem = TextProblem(m.name, lim.max_name_chars); !problem.empty()) return err.At(root["name"], "name", problem);
  if (auto problem = ModelNameProblem(m.model); !problem.empty()) return err.At(root["model"], "model", problem);
  if (root["priority"]) {
    if (auto s = Read(root["priority"], "priority", err, m.priority); !s.ok()) return s;
  }
  GenerationInfo defaults;
  defaults.model = m.model;
  defaults.width = defaults.height = 1024;
  defaults.steps = 30;
  defaults.cfg = 5.0;
  defaults.sampler = "euler";
  defaults.schedule = "normal";
  std::optional<std::string> default_negative;
  Img2ImgSource default_src;
  if (root["defaults"]) {
    if (auto s = ApplySettings(root["defaults"], "defaults", lim, err, files, defaults, &default_negative, &default_src);
        !s.ok()) {
      return s;
    }
  }
  default_src.strength_line = 0;  // a default strength applies to img2img items only
  if (root["postprocess"]) {
    if (!root["postprocess"].IsMap()) return err.At(root["postprocess"], "postprocess", "must be a mapping");
    m.postprocess_json = ToJson(root["postprocess"]).dump();
    if (m.postprocess_json.size() > lim.max_postprocess_bytes) {
      return err.At(root["postprocess"], "postprocess",
                    absl::StrCat("is ", m.postprocess_json.size(), " bytes as JSON; the limit is ", lim.max_postprocess_bytes));
    }
  }
  const YAML::Node items = root["items"];
  if (!items || !items.IsSequence() || items.size() == 0) return err.At(items ? items : root, "items", "must be a non-empty list");
  for (size_t i = 0; i < items.size(); ++i) {
    const YAML::Node item = items[i];
    const std::string where = absl::StrCat("items[", i, "]");
    if (!item.IsMap()) return err.At(item, where, "must be a mapping");
    if (auto s = OnlyKeys(item, {"prompt", "negative", "count", "seed", "overrides", "lora", "init_image", "strength",
                                 "tcd_gamma"},
                          where, err); !s.ok()) {
      return s;
    }
    GenerationInfo p = defaults;
    Img2ImgSource src = default_src;
    std::optional<std::string> negative = default_negative;
    if (!item["prompt"]) return err.At(item, where + ".prompt", "is required");
    if (auto s = Read(item["prompt"], where + ".prompt", err, p.prompt); !s.ok()) return s;
    if (auto problem = PromptProblem(p.prompt, lim); !problem.empty()) return err.At(item["prompt"], where + ".prompt", problem);
    if (item["overrides"]) {
      if (auto s = ApplySettings(item["overrides"], where + ".overrides", lim, err, files, p, &negative, &src); !s.ok()) {
        return s;
      }
    }
    if (auto s = ApplyWorkflow(item, where, lim, err, files, p, &src); !s.ok()) return s;
    if (auto s = CheckWorkflow(item, where, err, p, src); !s.ok()) return s;
    if (item["negative"]) {
      std::string text;
      if (auto s = Read(item["negative"], where + ".negative", err, text); !s.ok()) return s;
        if (auto problem = PromptProblem(text, lim); !problem.empty()) return err.At(item["negative"], where + ".negative", problem);
      negative = text;
    }
    p.negative = negative;
    int count = 1;
    if (item["count"]) {
      if (auto s = Read(item["count"], where + ".count", err, count); !s.ok()) return s;
      if (count < 1 || count > lim.max_count_per_item) {
        return err.At(item["count"], where + ".count", absl::StrCat("must be 1..", lim.max_count_per_item));
      }
    }
    std::optional<uint64_t> seed;
    if (item["seed"]) {
      uint64_t s64 = 0;
      if (auto s = Read(item["seed"], where + ".seed", err, s64); !s.ok()) return s;
      seed = s64;
    }
    if (m.image_count + count > lim.max_images_per_job) {
      return err.At(item, where + ".count", absl::StrCat("the job would exceed ", lim.max_images_per_job, " images"));
    }
    m.entries.push_back({p, count, seed, static_cast<int>(m.image_count)});
    m.image_count += count;
  }
  return m;
}

}  // namespace spriteforge
