#include "common/sprite/spec.h"

#include "absl/strings/str_cat.h"

namespace spriteforge::postprocess {
namespace {

uint32_t Pack(const Rgb& c) { return (uint32_t{c[0]} << 16) | (uint32_t{c[1]} << 8) | c[2]; }
Rgb Unpack(uint32_t v) {
  return Rgb{static_cast<uint8_t>(v >> 16), static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
}

// The key a "postprocess.KEY...: problem" message is about.
std::string KeyOf(const absl::Status& status) {
  const std::string message(status.message());
  constexpr std::string_view kPrefix = "postprocess.";
  if (message.rfind(kPrefix, 0) != 0) return "";
  const size_t end = message.find_first_of(".[:", kPrefix.size());
  return message.substr(kPrefix.size(), end == std::string::npos ? std::string::npos : end - kPrefix.size());
}

}  // namespace

absl::StatusOr<v1::PostprocessSpec> ParsePostprocessSpec(const nlohmann::json& section, std::string* bad_key) {
  // One parser for every value: the options, with palette files only named, not read.
  PaletteAccess names_only;
  names_only.read_files = false;
  auto o = ParsePostprocessOptions(section, names_only);
  if (!o.ok()) {
    if (bad_key) *bad_key = KeyOf(o.status());
    return o.status();
  }
  v1::PostprocessSpec spec;
  spec.set_background(o->background == Background::kFlood    ? v1::PostprocessSpec::BACKGROUND_FLOOD
                      : o->background == Background::kChroma ? v1::PostprocessSpec::BACKGROUND_CHROMA
                                                              : v1::PostprocessSpec::BACKGROUND_NONE);
  spec.set_tolerance(o->tolerance);
  spec.set_key(Pack(o->key));
  spec.set_width(o->width);
  spec.set_height(o->height);
  spec.set_method(o->method == PixelateMethod::kArea ? v1::PostprocessSpec::METHOD_AREA
                                                     : v1::PostprocessSpec::METHOD_MAJORITY);
  if (section.is_object() && section.contains("palette")) {
    const nlohmann::json& palette = section["palette"];
    if (palette.is_array()) {
      for (const Rgb& c : o->palette->colors) spec.mutable_palette_colors()->add_rgb(Pack(c));
    } else if (BuiltinPalette(palette.get<std::string>()).ok()) {
      spec.set_palette_name(palette.get<std::string>());
    } else {
      spec.set_palette_file(palette.get<std::string>());
    }
  }
  spec.set_colors(o->colors);
  spec.set_quantizer(o->quantizer == Quantizer::kMedianCut ? v1::PostprocessSpec::QUANTIZER_MEDIAN_CUT
                                                           : v1::PostprocessSpec::QUANTIZER_KMEANS);
  switch (o->dither) {
    case Dither::kNone: spec.set_dither(v1::PostprocessSpec::DITHER_NONE); break;
    case Dither::kBayer: spec.set_dither(v1::PostprocessSpec::DITHER_BAYER); break;
    case Dither::kFloydSteinberg: spec.set_dither(v1::PostprocessSpec::DITHER_FS); break;
  }
  spec.set_crop(o->crop);
  spec.set_padding(o->padding);
  return spec;
}

absl::StatusOr<PostprocessOptions> OptionsFromSpec(const v1::PostprocessSpec& spec, const PaletteAccess& access) {
  PostprocessOptions o;
  o.background = spec.background() == v1::PostprocessSpec::BACKGROUND_FLOOD    ? Background::kFlood
                 : spec.background() == v1::PostprocessSpec::BACKGROUND_CHROMA ? Background::kChroma
                                                                               : Background::kNone;
  o.tolerance = spec.tolerance();
  o.key = Unpack(spec.key());
  o.width = spec.width();
  o.height = spec.height();
  o.method = spec.method() == v1::PostprocessSpec::METHOD_AREA ? PixelateMethod::kArea : PixelateMethod::kMajority;
  switch (spec.palette_case()) {
    case v1::PostprocessSpec::kPaletteName: {
      auto palette = BuiltinPalette(spec.palette_name());
      if (!palette.ok()) return absl::InvalidArgumentError(absl::StrCat("postprocess.palette: ", palette.status().message()));
      o.palette = std::move(*palette);
      break;
    }
    case v1::PostprocessSpec::kPaletteFile: {
      if (access.folder.empty()) {
        return absl::InvalidArgumentError(absl::StrCat("postprocess.palette: \"", spec.palette_file(),
                                                       "\" names a palette file, but this worker has no --palette-dir"));
      }
      auto palette = LoadPalette(access.folder + "/" + spec.palette_file());
      if (!palette.ok()) return absl::InvalidArgumentError(absl::StrCat("postprocess.palette: ", palette.status().message()));
      o.palette = std::move(*palette);
      break;
    }
    case v1::PostprocessSpec::kPaletteColors: {
      Palette palette;
      for (uint32_t rgb : spec.palette_colors().rgb()) palette.colors.push_back(Unpack(rgb));
      o.palette = std::move(palette);
      break;
    }
    case v1::PostprocessSpec::PALETTE_NOT_SET: break;
  }
  o.colors = spec.colors();
  o.quantizer = spec.quantizer() == v1::PostprocessSpec::QUANTIZER_MEDIAN_CUT ? Quantizer::kMedianCut : Quantizer::kKMeans;
  switch (spec.dither()) {
    case v1::PostprocessSpec::DITHER_BAYER: o.dither = Dither::kBayer; break;
    case v1::PostprocessSpec::DITHER_FS: o.dither = Dither::kFloydSteinberg; break;
    default: o.dither = Dither::kNone; break;
  }
  o.crop = spec.crop();
  o.padding = spec.padding();
  return o;
}

}  // namespace spriteforge::postprocess
