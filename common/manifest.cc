#include "common/manifest.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/manifest_builder.h"
#include "common/manifest_files.h"
#include "common/sampling.h"
#include "common/sprite/control/pose_library.h"
#include "common/sprite/spec.h"
#include "common/status_macros.h"
#include "common/text.h"
#include "common/yaml_check.h"

namespace spriteforge {
namespace {

// Errors carry "file:line: field: problem" (FieldErrors with the file as origin).
class Errors {
 public:
  explicit Errors(const std::string& file) : errors_(file) {}
  absl::Status At(const YAML::Node& node, const std::string& field, const std::string& problem) const {
    return errors_.At(Ref(node, field), problem);
  }
  static FieldRef Ref(const YAML::Node& node, const std::string& field) {
    return {field, node.IsDefined() ? node.Mark().line + 1 : 0};
  }

 private:
  FieldErrors errors_;
};

FieldRef Ref(const YAML::Node& node, const std::string& field) { return Errors::Ref(node, field); }

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

template <typename T>
absl::StatusOr<T> ReadAs(const YAML::Node& node, const std::string& field, const Errors& err) {
  T out{};
  RETURN_IF_ERROR(Read(node, field, err, out));
  return out;
}

// A key's value read as T and handed to a builder setter with its field and line.
template <typename T, typename Setter>
absl::Status Apply(const YAML::Node& map, const char* key, const std::string& where, const Errors& err, Setter set) {
  if (!map[key]) return absl::OkStatus();
  const std::string field = where.empty() ? key : where + "." + key;
  ASSIGN_OR_RETURN(T value, ReadAs<T>(map[key], field, err));
  return set(Ref(map[key], field), value);
}

// A ControlNet model (by name or uploaded) with its scale and active share of the steps.
absl::Status ReadControlNet(const YAML::Node& entry, const std::string& f, const Errors& err, EntryBuilder& b) {
  if (!entry["model"]) return err.At(entry, f + ".model", "is required (a ControlNet in the workers' --controlnet-dir, or a path)");
  ASSIGN_OR_RETURN(auto model, ReadAs<std::string>(entry["model"], f + ".model", err));
  RETURN_IF_ERROR(b.AddControlNet(Ref(entry, f), Ref(entry["model"], f + ".model"), model));
  RETURN_IF_ERROR(Apply<double>(entry, "scale", f, err, [&](const FieldRef& at, double v) { return b.SetControlScale(at, v); }));
  RETURN_IF_ERROR(Apply<bool>(entry, "guess_mode", f, err, [&](const FieldRef& at, bool v) { return b.SetControlGuessMode(at, v); }));
  double start = 0.0, end = 1.0;
  if (entry["start"]) RETURN_IF_ERROR(Read(entry["start"], f + ".start", err, start));
  if (entry["end"]) RETURN_IF_ERROR(Read(entry["end"], f + ".end", err, end));
  return b.SetControlSpan(Ref(entry["start"] ? entry["start"] : entry, f + ".start"), start,
                          Ref(entry["end"] ? entry["end"] : entry, f + ".end"), end);
}

// guidance_interval: {start: 0.2, end: 0.8}, shares of the steps (each defaults to its bound).
absl::Status ReadGuidanceInterval(const YAML::Node& span, const std::string& f, const Errors& err, EntryBuilder& b) {
  if (!span.IsMap()) return err.At(span, f, "must be a mapping {start: 0.0, end: 0.6} (shares of the steps)");
  RETURN_IF_ERROR(OnlyKeys(span, {"start", "end"}, f, err));
  double start = 0.0, end = 1.0;
  if (span["start"]) RETURN_IF_ERROR(Read(span["start"], f + ".start", err, start));
  if (span["end"]) RETURN_IF_ERROR(Read(span["end"], f + ".end", err, end));
  return b.SetGuidanceInterval(Ref(span["start"] ? span["start"] : span, f + ".start"), start,
                               Ref(span["end"] ? span["end"] : span, f + ".end"), end);
}

absl::Status ReadControlImage(const YAML::Node& entry, const std::string& f, const Errors& err, EntryBuilder& b) {
  const int given = (entry["image"] ? 1 : 0) + (entry["pose"] ? 1 : 0) + (entry["canny"] ? 1 : 0);
  if (given != 1) return err.At(entry, f, "needs exactly one of image (a PNG), pose (a pose name or .json file) or canny");
  if (entry["image"]) {
    return Apply<std::string>(entry, "image", f, err, [&](const FieldRef& at, const std::string& v) { return b.SetControlImage(at, v); });
  }
  if (entry["pose"]) {
    return Apply<std::string>(entry, "pose", f, err, [&](const FieldRef& at, const std::string& v) { return b.SetControlPose(at, v); });
  }
  const YAML::Node canny = entry["canny"];
  if (!canny.IsMap()) return err.At(canny, f + ".canny", "must be a mapping {image: FILE, low: 100, high: 200}");
  RETURN_IF_ERROR(OnlyKeys(canny, {"image", "low", "high"}, f + ".canny", err));
  if (!canny["image"]) return err.At(canny, f + ".canny.image", "is required");
  ASSIGN_OR_RETURN(auto path, ReadAs<std::string>(canny["image"], f + ".canny.image", err));
  int low = 100, high = 200;  // the thresholds ControlNet's canny examples use
  if (canny["low"]) RETURN_IF_ERROR(Read(canny["low"], f + ".canny.low", err, low));
  if (canny["high"]) RETURN_IF_ERROR(Read(canny["high"], f + ".canny.high", err, high));
  return b.SetControlCanny(Ref(canny["image"], f + ".canny.image"), path, Ref(canny, f + ".canny"), low, high);
}

absl::Status ReadControls(const YAML::Node& node, const std::string& field, const Errors& err, EntryBuilder& b) {
  if (!node.IsSequence()) return err.At(node, field, "must be a list of {model, image | pose | canny, scale, start, end}");
  RETURN_IF_ERROR(b.ClearControls(Ref(node, field), node.size()));
  for (size_t i = 0; i < node.size(); ++i) {
    const YAML::Node entry = node[i];
    const std::string f = absl::StrCat(field, "[", i, "]");
    if (!entry.IsMap()) return err.At(entry, f, "must be a mapping {model, image | pose | canny, scale, start, end}");
    RETURN_IF_ERROR(OnlyKeys(entry, {"model", "image", "pose", "canny", "scale", "start", "end", "guess_mode"}, f, err));
    RETURN_IF_ERROR(ReadControlNet(entry, f, err, b));
    RETURN_IF_ERROR(ReadControlImage(entry, f, err, b));
  }
  return absl::OkStatus();
}

// `reference: {images: [FILE...], adapter, encoder?, scale}` (the encoder: see SetIpAdapter).
// In a set (`first` not null) also `{first: true, adapter, encoder?, scale}`: no images, the
// set's first image is the others' reference; `*first` says which form it was.
absl::Status ReadReference(const YAML::Node& node, const std::string& f, const Errors& err, EntryBuilder& b,
                           bool* first = nullptr) {
  if (!node.IsMap()) return err.At(node, f, "must be a mapping {images: [FILE, ...], adapter, encoder, scale}");
  RETURN_IF_ERROR(OnlyKeys(node, {"images", "first", "adapter", "encoder", "scale"}, f, err));
  bool from_first = false;
  if (node["first"]) {
    if (!first) {
      return err.At(node["first"], f + ".first",
                    "only in a set's reference (set: {poses, ..., reference: {first: true, adapter}}), where the "
                    "set's first image is the others' reference");
    }
    RETURN_IF_ERROR(Read(node["first"], f + ".first", err, from_first));
    if (from_first && node["images"]) {
      return err.At(node["images"], f + ".images",
                    "cannot be combined with first: true (the set's first image is the reference)");
    }
  }
  if (first) *first = from_first;
  const YAML::Node images = node["images"];
  if (!from_first && (!images || !images.IsSequence())) {
    return err.At(images ? images : node, f + ".images",
                  first ? "must be a non-empty list of PNG files (or first: true: the set's first image)"
                        : "must be a non-empty list of PNG files");
  }
  if (!from_first) RETURN_IF_ERROR(b.ClearReferenceImages(Ref(images, f + ".images"), images.size()));
  for (size_t i = 0; !from_first && i < images.size(); ++i) {
    const std::string at = absl::StrCat(f, ".images[", i, "]");
    ASSIGN_OR_RETURN(auto path, ReadAs<std::string>(images[i], at, err));
    RETURN_IF_ERROR(b.AddReferenceImage(Ref(images[i], at), path));
  }
  if (!node["adapter"]) return err.At(node, f + ".adapter", "is required (an IP-Adapter in the workers' --ip-adapter-dir, or a path)");
  ASSIGN_OR_RETURN(auto adapter, ReadAs<std::string>(node["adapter"], f + ".adapter", err));
  std::string encoder;
  if (node["encoder"]) RETURN_IF_ERROR(Read(node["encoder"], f + ".encoder", err, encoder));
  RETURN_IF_ERROR(b.SetIpAdapter(Ref(node["adapter"], f + ".adapter"), adapter,
                                 Ref(node["encoder"] ? node["encoder"] : node["adapter"], f + ".encoder"), encoder));
  return Apply<double>(node, "scale", f, err, [&](const FieldRef& at, double v) { return b.SetIpAdapterScale(at, v); });
}

absl::Status ReadLoras(const YAML::Node& node, const std::string& field, const Errors& err, EntryBuilder& b) {
  if (!node.IsSequence()) return err.At(node, field, "must be a list of {name: NAME} or {path: FILE}, each with an optional strength");
  RETURN_IF_ERROR(b.ClearLoras(Ref(node, field), node.size()));
  for (size_t i = 0; i < node.size(); ++i) {
    const YAML::Node entry = node[i];
    const std::string f = absl::StrCat(field, "[", i, "]");
    if (!entry.IsMap()) return err.At(entry, f, "must be a mapping {name: NAME} or {path: FILE}");
    RETURN_IF_ERROR(OnlyKeys(entry, {"name", "path", "strength"}, f, err));
    if (!entry["name"] == !entry["path"]) return err.At(entry, f, "needs exactly one of name (in the workers' LoRA folder) or path (uploaded)");
    if (entry["name"]) {
      RETURN_IF_ERROR(Apply<std::string>(entry, "name", f, err, [&](const FieldRef& at, const std::string& v) { return b.AddLoraByName(at, v); }));
    } else {
      RETURN_IF_ERROR(Apply<std::string>(entry, "path", f, err, [&](const FieldRef& at, const std::string& v) { return b.AddLoraByPath(at, v); }));
    }
    RETURN_IF_ERROR(Apply<double>(entry, "strength", f, err, [&](const FieldRef& at, double v) { return b.SetLoraStrength(at, v); }));
  }
  return absl::OkStatus();
}

// The keys of LoRAs, img2img, few-step sampling, ControlNets and the IP-Adapter, allowed in
// defaults, overrides and items.
absl::Status ApplyWorkflow(const YAML::Node& map, const std::string& where, const Errors& err, EntryBuilder& b) {
  if (map["lora"]) RETURN_IF_ERROR(ReadLoras(map["lora"], where + ".lora", err, b));
  RETURN_IF_ERROR(Apply<std::string>(map, "init_image", where, err, [&](const FieldRef& at, const std::string& v) { return b.SetInitImage(at, v); }));
  RETURN_IF_ERROR(Apply<double>(map, "strength", where, err, [&](const FieldRef& at, double v) { return b.SetStrength(at, v); }));
  RETURN_IF_ERROR(Apply<double>(map, "tcd_gamma", where, err, [&](const FieldRef& at, double v) { return b.SetTcdGamma(at, v); }));
  if (map["guidance_interval"]) RETURN_IF_ERROR(ReadGuidanceInterval(map["guidance_interval"], where + ".guidance_interval", err, b));
  RETURN_IF_ERROR(Apply<int>(map, "deep_cache", where, err, [&](const FieldRef& at, int v) { return b.SetDeepCache(at, v); }));
  if (map["controls"]) RETURN_IF_ERROR(ReadControls(map["controls"], where + ".controls", err, b));
  if (map["reference"]) RETURN_IF_ERROR(ReadReference(map["reference"], where + ".reference", err, b));
  return absl::OkStatus();
}

// Applies the defaults/overrides keys in `map` onto `b`.
absl::Status ApplySettings(const YAML::Node& map, const std::string& where, const Errors& err, EntryBuilder& b) {
  if (!map.IsMap()) return err.At(map, where, "must be a mapping");
  RETURN_IF_ERROR(OnlyKeys(map, {"width", "height", "steps", "cfg", "sampler", "schedule", "negative", "tileable",
                                 "lora", "init_image", "strength", "tcd_gamma", "controls", "reference", "guidance_interval",
                                 "deep_cache"},
                           where, err));
  RETURN_IF_ERROR(ApplyWorkflow(map, where, err, b));
  RETURN_IF_ERROR(Apply<int>(map, "width", where, err, [&](const FieldRef& at, int v) { return b.SetWidth(at, v); }));
  RETURN_IF_ERROR(Apply<int>(map, "height", where, err, [&](const FieldRef& at, int v) { return b.SetHeight(at, v); }));
  RETURN_IF_ERROR(Apply<int>(map, "steps", where, err, [&](const FieldRef& at, int v) { return b.SetSteps(at, v); }));
  RETURN_IF_ERROR(Apply<double>(map, "cfg", where, err, [&](const FieldRef& at, double v) { return b.SetCfg(at, v); }));
  RETURN_IF_ERROR(Apply<std::string>(map, "sampler", where, err, [&](const FieldRef& at, const std::string& v) { return b.SetSampler(at, v); }));
  RETURN_IF_ERROR(Apply<std::string>(map, "schedule", where, err, [&](const FieldRef& at, const std::string& v) { return b.SetSchedule(at, v); }));
  RETURN_IF_ERROR(Apply<bool>(map, "tileable", where, err, [&](const FieldRef&, bool v) { b.SetTileable(v); return absl::OkStatus(); }));
  return Apply<std::string>(map, "negative", where, err, [&](const FieldRef& at, const std::string& v) { return b.SetNegative(at, v); });
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
// <name>_<pose> ("hero_walk_s_0"; the pose's name alone without an item name). With
// `reference: {first: true, ...}` the first pose is made without the IP-Adapter and the
// others take its images (numbered from `first_index`) as their reference.
absl::StatusOr<std::vector<EntryBuilder>> ExpandSet(const YAML::Node& set, const std::string& f, const std::string& name,
                                                    const Errors& err, const EntryBuilder& item, int first_index) {
  const ManifestLimits& lim = item.limits();
  if (!set.IsMap()) return err.At(set, f, "must be a mapping {poses, directions, model, scale, start, end, reference}");
  RETURN_IF_ERROR(OnlyKeys(set, {"poses", "directions", "model", "scale", "start", "end", "guess_mode", "reference"}, f, err));
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
  if (item.sampling().controlnets_size() + 1 > static_cast<int>(lim.max_controls)) {
    return err.At(set, f, absl::StrCat("with the item's controls makes more than ", lim.max_controls, " ControlNets"));
  }
  EntryBuilder base = item;
  bool from_first = false;
  if (set["reference"]) RETURN_IF_ERROR(ReadReference(set["reference"], f + ".reference", err, base, &from_first));
  if (from_first && poses.size() < 2) {
    return err.At(set["reference"]["first"], f + ".reference.first",
                  "needs a set of two or more poses: the first image is the reference of the others");
  }
  EntryBuilder scratch = base;  // reads the set's ControlNet alone
  RETURN_IF_ERROR(scratch.ClearControls(Ref(set, f), 0));
  RETURN_IF_ERROR(ReadControlNet(set, f, err, scratch));
  const v1::ControlNetRef net = scratch.sampling().controlnets(0);
  std::vector<EntryBuilder> out;
  for (const SetPose& pose : poses) {
    EntryBuilder p = base;
    v1::ControlImage picture;
    picture.set_pose(pose.qualified);
    p.PrependControl(net, picture);
    p.SetExpandedName(name.empty() ? pose.name : absl::StrCat(name, "_", pose.name));
    if (from_first && out.empty()) p.ClearIpAdapter();
    else if (from_first) p.SetReferenceFromImage(first_index);
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
  if (entry.reference_from >= 0) image.image.set_reference_from_index(entry.reference_from + k);
  return image;
}

absl::StatusOr<Manifest> ParseManifest(const std::string& text, const std::string& file,
                                       const std::function<uint64_t()>& draw_seed, const ManifestLimits& lim,
                                       const FileResolver& files) {
  ASSIGN_OR_RETURN(Manifest m, ParseManifestEntries(text, file, lim, files));
  m.images.reserve(m.image_count);
  for (const ManifestEntry& entry : m.entries) {
    for (int k = 0; k < entry.count; ++k) m.images.push_back(ExpandImage(entry, k, draw_seed));
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
  RETURN_IF_ERROR(OnlyKeys(root, {"name", "model", "priority", "defaults", "items", "postprocess", "preview_every"}, "", err));

  ManifestBuilder m(lim, file);
  for (const char* key : {"name", "model"}) {
    if (!root[key]) return err.At(root, key, "is required");
  }
  RETURN_IF_ERROR(Apply<std::string>(root, "name", "", err, [&](const FieldRef& at, const std::string& v) { return m.SetName(at, v); }));
  RETURN_IF_ERROR(Apply<std::string>(root, "model", "", err, [&](const FieldRef& at, const std::string& v) { return m.SetModel(at, v); }));
  RETURN_IF_ERROR(Apply<int>(root, "priority", "", err, [&](const FieldRef&, int v) { m.SetPriority(v); return absl::OkStatus(); }));
  RETURN_IF_ERROR(Apply<int>(root, "preview_every", "", err, [&](const FieldRef& at, int v) { return m.SetPreviewEvery(at, v); }));
  EntryBuilder defaults(lim, files, file);
  if (root["defaults"]) RETURN_IF_ERROR(ApplySettings(root["defaults"], "defaults", err, defaults));
  defaults.KeepStrengthAsDefault();
  if (const YAML::Node section = root["postprocess"]) {
    if (!section.IsMap()) return err.At(section, "postprocess", "must be a mapping");
    RETURN_IF_ERROR(m.SetPostprocess(Ref(section, "postprocess"), ToJson(section), [&](const std::string& key) {
      return section[key] ? section[key].Mark().line + 1 : 0;
    }));
  }
  const YAML::Node items = root["items"];
  if (!items || !items.IsSequence() || items.size() == 0) return err.At(items ? items : root, "items", "must be a non-empty list");
  for (size_t i = 0; i < items.size(); ++i) {
    const YAML::Node item = items[i];
    const std::string where = absl::StrCat("items[", i, "]");
    if (!item.IsMap()) return err.At(item, where, "must be a mapping");
    RETURN_IF_ERROR(OnlyKeys(item, {"prompt", "negative", "count", "seed", "overrides", "lora", "init_image", "strength",
                                    "tcd_gamma", "controls", "reference", "name", "set", "guidance_interval", "deep_cache"},
                             where, err));
    EntryBuilder p = defaults;
    if (!item["prompt"]) return err.At(item, where + ".prompt", "is required");
    RETURN_IF_ERROR(Apply<std::string>(item, "prompt", where, err, [&](const FieldRef& at, const std::string& v) { return p.SetPrompt(at, v); }));
    if (item["overrides"]) RETURN_IF_ERROR(ApplySettings(item["overrides"], where + ".overrides", err, p));
    RETURN_IF_ERROR(ApplyWorkflow(item, where, err, p));
    std::string name;
    RETURN_IF_ERROR(Apply<std::string>(item, "name", where, err, [&](const FieldRef& at, const std::string& v) {
      name = v;
      return p.SetName(at, v);
    }));
    RETURN_IF_ERROR(Apply<std::string>(item, "negative", where, err, [&](const FieldRef& at, const std::string& v) { return p.SetNegative(at, v); }));
    RETURN_IF_ERROR(Apply<int>(item, "count", where, err, [&](const FieldRef& at, int v) { return p.SetCount(at, v); }));
    RETURN_IF_ERROR(Apply<uint64_t>(item, "seed", where, err, [&](const FieldRef&, uint64_t v) { p.SetSeed(v); return absl::OkStatus(); }));
    std::vector<EntryBuilder> expanded;
    if (item["set"]) {
      ASSIGN_OR_RETURN(expanded, ExpandSet(item["set"], where + ".set", name, err, p, m.next_index()));
    } else {
      expanded.push_back(std::move(p));
    }
    for (const EntryBuilder& e : expanded) RETURN_IF_ERROR(m.AddEntry(Ref(item, where), Ref(item, where + ".count"), e));
  }
  return m.Build();
}

}  // namespace spriteforge
