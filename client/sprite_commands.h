// The client's local post-processing commands, as library functions (the client parses
// the command line and dispatches). Each returns the exit code: 0 success, 1 failure,
// and prints one line on stderr when it fails.
//   pixelate IN.png --size WxH [--method area|majority] [--palette pico8|gameboy|nes|FILE]
//            [--colors N] [--quantizer median_cut|kmeans] [--dither none|bayer|fs]
//            [--transparent] [--tolerance X] [--crop] [--padding N] --out OUT.png
//   sheet DIR --out sheet.png [--tight] [--columns N]      (writes sheet.json beside it)
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace spriteforge::postprocess {

// Empty strings and unset numbers leave the post-processing defaults.
struct PixelateArgs {
  std::string in, out, size;
  std::string method, palette, quantizer, dither;
  std::optional<int> colors, padding;
  double tolerance = 0.08;
  bool transparent = false, crop = false;
};

struct SheetArgs {
  std::string dir, out;
  bool tight = false;
  int columns = 0;  // 0: square-ish
};

int PixelateCommand(const PixelateArgs& args);
int SheetCommand(const SheetArgs& args);


}  // namespace spriteforge::postprocess
