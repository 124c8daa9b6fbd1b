// Palettes: fixed ones for classic consoles, user files (.hex, .gpl, PNG), palettes derived
// from an image (median cut or k-means in Oklab), and quantization to a palette with
// optional dithering.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/png.h"
#include "common/sprite/color.h"

namespace spriteforge::postprocess {

struct Palette {
  std::vector<Rgb> colors;
};

enum class PaletteFormat { kHex, kGpl };
enum class Dither { kNone, kBayer, kFloydSteinberg };
enum class Quantizer { kMedianCut, kKMeans };

// "pico8" (16), "gameboy" (4 greens), "nes" (54 distinct colours of the 2C02 palette as
// commonly rendered by emulators); NotFound otherwise.
absl::StatusOr<Palette> BuiltinPalette(const std::string& name);
// .hex: one RRGGBB per line (optional '#'); .gpl: GIMP palette ("R G B name" lines).
absl::StatusOr<Palette> ParsePaletteText(const std::string& text, PaletteFormat format);
// A built-in name, or a .hex/.gpl/.png file (a PNG gives its distinct opaque colours, at most 256).
absl::StatusOr<Palette> LoadPalette(const std::string& name_or_path);

// A palette of at most `n` colours for the image's opaque pixels. An image with n or fewer
// distinct colours gets exactly those, so quantizing twice changes nothing.
Palette DerivePalette(const RasterImage& image, int n, Quantizer quantizer);

// Every opaque pixel becomes a palette colour (nearest in Oklab, after dithering);
// transparent pixels (alpha < 128) stay as they are.
RasterImage Quantize(const RasterImage& image, const Palette& palette, Dither dither);

absl::StatusOr<Dither> ParseDither(const std::string& name);

}  // namespace spriteforge::postprocess
