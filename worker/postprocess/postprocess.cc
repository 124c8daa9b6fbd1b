#include "postprocess/postprocess.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "postprocess/background.h"

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

}  // namespace

absl::StatusOr<PostprocessOptions> ParsePostprocessOptions(const nlohmann::json& section) {
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
  if (auto st = str("background", &s); !st.ok()) return st;
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
  if (auto st = str("key", &s); !st.ok()) return st;
  if (!s.empty()) {
    if (auto st = Field("key", ParseColor(s), &o.key); !st.ok()) return st;
  }
  s.clear();
  if (auto st = str("pixelate", &s); !st.ok()) return st;
  if (!s.empty()) {
    if (auto st = ParseSize(s, &o.width, &o.height); !st.ok()) return FieldError("pixelate", std::string(st.message()));
  }
  s.clear();
  if (auto st = str("method", &s); !st.ok()) return st;
  if (!s.empty()) {
    if (auto st = Field("method", ParsePixelateMethod(s), &o.method); !st.ok()) return st;
  }
  s.clear();
  if (auto st = str("palette", &s); !st.ok()) return st;
  if (!s.empty()) {
    Palette p;
    if (auto st = Field("palette", LoadPalette(s), &p); !st.ok()) return st;
    o.palette = p;
  }
  if (section.contains("colors")) {
    if (!section["colors"].is_number_integer()) return FieldError("colors", "must be an integer");
    o.colors = section["colors"].get<int>();
    if (o.colors < 2 || o.colors > 256) return FieldError("colors", "must be 2..256");
    if (o.palette) return FieldError("colors", "give either palette or colors, not both");
  }
  s.clear();
  if (auto st = str("quantizer", &s); !st.ok()) return st;
  if (!s.empty()) {
    if (s == "median_cut") o.quantizer = Quantizer::kMedianCut;
    else if (s == "kmeans") o.quantizer = Quantizer::kKMeans;
    else return FieldError("quantizer", absl::StrCat("unknown quantizer \"", s, "\" (median_cut, kmeans)"));
  }
  s.clear();
  if (auto st = str("dither", &s); !st.ok()) return st;
  if (!s.empty()) {
    if (auto st = Field("dither", ParseDither(s), &o.dither); !st.ok()) return st;
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
    auto pixelated = Pixelate(image, o.width, o.height, o.method);
    if (!pixelated.ok()) return pixelated.status();
    image = std::move(*pixelated);
  }
  if (o.palette) image = Quantize(image, *o.palette, o.dither);
  if (o.colors > 0) image = Quantize(image, DerivePalette(image, o.colors, o.quantizer), o.dither);
  if (o.crop) image = CropToContent(image, o.padding);
  return image;
}

}  // namespace spriteforge::postprocess
