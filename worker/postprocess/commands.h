// The client's local post-processing commands, as library functions (the client only
// dispatches). Each returns the exit code: 0 success, 1 failure, 2 bad usage, and prints
// one line on stderr when it fails.
//   pixelate IN.png --size WxH [--method area|majority] [--palette pico8|gameboy|nes|FILE]
//            [--colors N] [--quantizer median_cut|kmeans] [--dither none|bayer|fs]
//            [--transparent] [--tolerance X] [--crop] [--padding N] --out OUT.png
//   sheet DIR --out sheet.png [--tight] [--columns N]      (writes sheet.json beside it)
#pragma once

#include <string>
#include <vector>

namespace spriteforge::postprocess {

int PixelateCommand(const std::vector<std::string>& args);
int SheetCommand(const std::vector<std::string>& args);

}  // namespace spriteforge::postprocess
