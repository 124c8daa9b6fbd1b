#include "common/sprite/postprocess.h"

#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/sprite/background.h"
#include "common/status_macros.h"
#include "common/text.h"

namespace spriteforge::postprocess {
namespace {

absl::Status FieldError(const std::string& field, const std::string& problem) {
  return absl::InvalidArgumentError(absl::StrCat("postprocess.", field, ": ", problem));
}

template <typename T>
absl::Status Field(const std::string& field, const absl::StatusOr<T>& value, T* out) {
  if (!value.ok()) return FieldError(field, std::string(value.status().message()));
  *out = *value;
  return absl::OkStatus();
}

constexpr int kMaxInlineColours = 256;

bool IsPaletteFileName(const std::string& name) {
  const std::string lower = absl::AsciiStrToLower(name);
  return IsSafeName(name) && (absl::EndsWith(lower, ".hex") || absl::EndsWith(lower, ".gpl") ||
                              absl::EndsWith(lower, ".png"));
}

// `palette:` as the section gives it; `*palette` stays unset when only names are checked.
absl::Status ReadPalette(const nlohmann::json& value, const PaletteAccess& access, std::optional<Palette>* palette,
                         bool* given) {
  *given = true;
  if (value.is_array()) {
    if (value.empty() || value.size() > kMaxInlineColours) {
      return FieldError("palette", absl::StrCat("a list of 1..", kMaxInlineColours, " colours"));
    }
    Palette p;
    for (size_t i = 0; i < value.size(); ++i) {
      const std::string field = absl::StrCat("palette[", i, "]");
      if (!value[i].is_string()) return FieldError(field, "must be a colour such as \"#9bbc0f\"");
      Rgb colour;
      RETURN_IF_ERROR(Field(field, ParseColor(value[i].get<std::string>()), &colour));
      p.colors.push_back(colour);
    }
    *palette = std::move(p);
    return absl::OkStatus();
  }
  if (!value.is_string()) return FieldError("palette", "must be a name or a list of colours");
  const std::string name = value.get<std::string>();
  auto load = [&](const std::string& path) -> absl::Status {
    auto loaded = LoadPalette(path);
    if (!loaded.ok()) return FieldError("palette", std::string(loaded.status().message()));
    *palette = std::move(*loaded);
    return absl::OkStatus();
  };
  if (access.any_path) return load(name);
  if (auto builtin = BuiltinPalette(name); builtin.ok()) {
    *palette = std::move(*builtin);
    return absl::OkStatus();
  }
  if (!IsPaletteFileName(name)) {
    const bool path = name.find_first_of("/\\") != std::string::npos || name.find("..") != std::string::npos;
    return FieldError("palette", absl::StrCat(path ? absl::StrCat("palette paths are not allowed (\"", name, "\")")
                                                   : absl::StrCat("unknown palette \"", name, "\""),
                                              "; give pico8, gameboy, nes, a list of colours, or the file name "
                                              "of a palette in the worker's --palette-dir"));
  }
  if (!access.read_files) return absl::OkStatus();
  if (access.folder.empty()) {
    return FieldError("palette", absl::StrCat("\"", name, "\" names a palette file, but this worker has no --palette-dir"));
  }
  return load(access.folder + "/" + name);
}

}  // namespace

absl::StatusOr<PostprocessOptions> ParsePostprocessOptions(const nlohmann::json& section, const PaletteAccess& access) {
  PostprocessOptions o;
  if (section.is_null()) return o;
  if (!section.is_object()) return absl::InvalidArgumentError("postprocess: must be a mapping");
  static const std::set<std::string> kKeys = {"background", "tolerance", "key",  "pixelate", "method", "palette",
                                              "colors",     "quantizer", "dither", "crop",   "padding"};
  for (const auto& [key, value] : section.items()) {
    if (!kKeys.count(key)) return FieldError(key, "unknown field");
  }
  auto str = [&](const char* key, std::string* out) -> absl::Status {
    if (!section.contains(key)) return absl::OkStatus();
    if (section[key].is_string()) *out = section[key].get<std::string>();
    else if (section[key].is_number_integer()) *out = std::to_string(section[key].get<long>());
    else return FieldError(key, "must be a string");
    return absl::OkStatus();
  };
  std::string s;
  RETURN_IF_ERROR(str("background", &s));
  if (!s.empty()) {
    if (s == "none") o.background = Background::kNone;
    else if (s == "flood") o.background = Background::kFlood;
    else if (s == "chroma") o.background = Background::kChroma;
    else return FieldError("background", absl::StrCat("unknown mode \"", s, "\" (none, flood, chroma)"));
  }
  if (section.contains("tolerance")) {
    if (!section["tolerance"].is_number()) return FieldError("tolerance", "must be a number");
    o.tolerance = section["tolerance"].get<float>();
    if (o.tolerance < 0 || o.tolerance > 1) return FieldError("tolerance", "must be in 0..1 (Oklab distance)");
  }
  s.clear();
  RETURN_IF_ERROR(str("key", &s));
  if (!s.empty()) {
    RETURN_IF_ERROR(Field("key", ParseColor(s), &o.key));
  }
  s.clear();
  RETURN_IF_ERROR(str("pixelate", &s));
  if (!s.empty()) {
    if (auto st = ParseSize(s, &o.width, &o.height); !st.ok()) return FieldError("pixelate", std::string(st.message()));
  }
  s.clear();
  RETURN_IF_ERROR(str("method", &s));
  if (!s.empty()) {
    RETURN_IF_ERROR(Field("method", ParsePixelateMethod(s), &o.method));
  }
  bool palette_given = false;
  if (section.contains("palette")) {
    RETURN_IF_ERROR(ReadPalette(section["palette"], access, &o.palette, &palette_given));
  }
  if (section.contains("colors")) {
    if (!section["colors"].is_number_integer()) return FieldError("colors", "must be an integer");
    o.colors = section["colors"].get<int>();
    if (o.colors < 2 || o.colors > 256) return FieldError("colors", "must be 2..256");
    if (palette_given) return FieldError("colors", "give either palette or colors, not both");
  }
  s.clear();
  RETURN_IF_ERROR(str("quantizer", &s));
  if (!s.empty()) {
    if (s == "median_cut") o.quantizer = Quantizer::kMedianCut;
    else if (s == "kmeans") o.quantizer = Quantizer::kKMeans;
    else return FieldError("quantizer", absl::StrCat("unknown quantizer \"", s, "\" (median_cut, kmeans)"));
  }
  s.clear();
  RETURN_IF_ERROR(str("dither", &s));
  if (!s.empty()) {
    RETURN_IF_ERROR(Field("dither", ParseDither(s), &o.dither));
  }
  if (section.contains("crop")) {
    if (!section["crop"].is_boolean()) return FieldError("crop", "must be true or false");
    o.crop = section["crop"].get<bool>();
  }
  if (section.contains("padding")) {
    if (!section["padding"].is_number_integer()) return FieldError("padding", "must be an integer");
    o.padding = section["padding"].get<int>();
    if (o.padding < 0 || o.padding > 256) return FieldError("padding", "must be 0..256");
  }
  return o;
}

absl::StatusOr<RasterImage> RunPostprocess(const RasterImage& render, const PostprocessOptions& o) {
  RasterImage image = render;
  if (o.background == Background::kFlood) image = RemoveBackgroundFlood(image, o.tolerance);
  if (o.background == Background::kChroma) image = RemoveBackgroundChroma(image, o.key, o.tolerance);
  if (o.width > 0) {
    ASSIGN_OR_RETURN(auto pixelated, Pixelate(image, o.width, o.height, o.method));
    image = std::move(pixelated);
  }
  if (o.palette) image = Quantize(image, *o.palette, o.dither);
  if (o.colors > 0) image = Quantize(image, DerivePalette(image, o.colors, o.quantizer), o.dither);
  if (o.crop) image = CropToContent(image, o.padding);
  return image;
}

}  // namespace spriteforge::postprocess
