// The client's local post-processing commands, as library functions (the client parses
// the command line and dispatches). Each returns the exit code: 0 success, 1 failure,
// and prints one line on stderr when it fails.
//   pixelate IN.png --size WxH [--method area|majority] [--palette pico8|gameboy|nes|FILE]
//            [--colors N] [--quantizer median_cut|kmeans] [--dither none|bayer|fs]
//            [--transparent] [--tolerance X] [--crop] [--padding N] --out OUT.png
//   sheet DIR --out sheet.png [--tight] [--columns N]      (writes sheet.json beside it)
//   pose list | pose show SET --out DIR [--size WxH]       (one control image per pose)
//   canny IN.png --out OUT.png [--low N] [--high N]        (an edge map for canny ControlNets)
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

struct PoseShowArgs {
  std::string set, out, size = "512";  // set: builtin:NAME, a pose file or a folder of them
};

struct CannyArgs {
  std::string in, out;
  int low = 100, high = 200;
};

int PixelateCommand(const PixelateArgs& args);
int SheetCommand(const SheetArgs& args);
int PoseListCommand();
int PoseShowCommand(const PoseShowArgs& args);
int CannyCommand(const CannyArgs& args);


}  // namespace spriteforge::postprocess
