#include "common/manifest.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/manifest_files.h"
#include "common/sampling.h"
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

// An item's settings while they are read: defaults, then overrides, then the item.
struct Settings {
  v1::ImageParams image;
  v1::SamplingParams sampling;
  std::optional<double> strength;  // img2img: set by the manifest (checked once the item is known)
  double tcd_gamma = 0.3;
};

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
  return absl::OkStatus();
}

// Applies the defaults/overrides keys in `map` onto `p`, checking each against the limits.
absl::Status ApplySettings(const YAML::Node& map, const std::string& where, const ManifestLimits& lim,
                           const Errors& err, const FileResolver& files, Settings& p,
                           std::optional<std::string>* negative, Img2ImgSource* src) {
  if (!map.IsMap()) return err.At(map, where, "must be a mapping");
  if (auto s = OnlyKeys(map, {"width", "height", "steps", "cfg", "sampler", "schedule", "negative", "tileable",
                              "lora", "init_image", "strength", "tcd_gamma"},
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
  if ((s.sampler() == v1::SAMPLER_LCM || s.sampler() == v1::SAMPLER_TCD) && s.schedule() != v1::SCHEDULE_NORMAL) {
    return err.At(item, where + ".schedule",
                  absl::StrCat("sampler ", SamplerName(s.sampler()), " uses its own timesteps: the schedule must be normal"));
  }
  if (s.sampler() == v1::SAMPLER_TCD) s.set_tcd_gamma(p.tcd_gamma);
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
                                 "tcd_gamma"},
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
    if (m.image_count + count > lim.max_images_per_job) {
      return err.At(item, where + ".count", absl::StrCat("the job would exceed ", lim.max_images_per_job, " images"));
    }
    m.entries.push_back({std::move(p.image), std::move(p.sampling), count, seed, static_cast<int>(m.image_count)});
    m.image_count += count;
  }
  return m;
}

}  // namespace spriteforge
