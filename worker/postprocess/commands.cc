#include "postprocess/commands.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "postprocess/postprocess.h"
#include "postprocess/sheet.h"
#include "spriteforge/common/files.h"
#include "spriteforge/common/flags.h"

namespace spriteforge::postprocess {
namespace {

int Fail(const char* command, const std::string& message, int code = 1) {
  std::fprintf(stderr, "spriteforge %s: %s\n", command, message.c_str());
  return code;
}

}  // namespace

int PixelateCommand(const std::vector<std::string>& args) {
  auto flags = Flags::Parse(args,
                            {"--size", "--method", "--palette", "--colors", "--quantizer", "--dither", "--tolerance",
                             "--padding", "--out"},
                            {"--transparent", "--crop"});
  if (!flags.ok()) return Fail("pixelate", std::string(flags.status().message()), 2);
  if (flags->positional().size() != 1 || !flags->Has("--out") || !flags->Has("--size")) {
    return Fail("pixelate", "usage: spriteforge pixelate IN.png --size WxH [options] --out OUT.png", 2);
  }
  // The flags map onto the manifest's postprocess section, so both share one parser.
  nlohmann::json section = {{"pixelate", flags->Get("--size")}};
  for (const char* key : {"method", "palette", "quantizer", "dither"}) {
    if (flags->Has(absl::StrCat("--", key))) section[key] = flags->Get(absl::StrCat("--", key));
  }
  for (const char* key : {"colors", "padding"}) {
    auto v = flags->GetInt(absl::StrCat("--", key), 0);
    if (!v.ok()) return Fail("pixelate", std::string(v.status().message()), 2);
    if (flags->Has(absl::StrCat("--", key))) section[key] = *v;
  }
  auto tolerance = flags->GetDouble("--tolerance", 0.08);
  if (!tolerance.ok()) return Fail("pixelate", std::string(tolerance.status().message()), 2);
  if (flags->Has("--transparent")) section["background"] = "flood", section["tolerance"] = *tolerance;
  if (flags->Has("--crop")) section["crop"] = true;
  PaletteAccess own_files;
  own_files.any_path = true;  // the user's own files, on the user's own machine
  auto options = ParsePostprocessOptions(section, own_files);
  if (!options.ok()) return Fail("pixelate", std::string(options.status().message()), 2);

  PngText text;
  const std::string in = flags->positional()[0];
  auto image = ReadPngFile(in, &text);
  if (!image.ok()) return Fail("pixelate", std::string(image.status().message()));
  auto sprite = RunPostprocess(*image, *options);
  if (!sprite.ok()) return Fail("pixelate", std::string(sprite.status().message()));
  // Generation parameters travel with the sprite.
  if (auto s = WritePngFile(flags->Get("--out"), *sprite, text); !s.ok()) return Fail("pixelate", std::string(s.message()));
  return 0;
}

int SheetCommand(const std::vector<std::string>& args) {
  auto flags = Flags::Parse(args, {"--out", "--columns"}, {"--tight"});
  if (!flags.ok()) return Fail("sheet", std::string(flags.status().message()), 2);
  if (flags->positional().size() != 1 || !flags->Has("--out")) {
    return Fail("sheet", "usage: spriteforge sheet DIR --out sheet.png [--tight] [--columns N]", 2);
  }
  auto columns = flags->GetInt("--columns", 0);
  if (!columns.ok() || *columns < 0) return Fail("sheet", "--columns must be a non-negative integer", 2);
  const std::filesystem::path dir = flags->positional()[0];
  const std::filesystem::path out = flags->Get("--out");
  std::error_code ec;
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (e.path().extension() == ".png" && !std::filesystem::equivalent(e.path(), out, ec)) files.push_back(e.path());
  }
  if (ec) return Fail("sheet", absl::StrCat("cannot read ", dir.string(), ": ", ec.message()));
  if (files.empty()) return Fail("sheet", absl::StrCat("no PNG files in ", dir.string()));
  std::sort(files.begin(), files.end());
  std::vector<Frame> frames;
  for (const auto& f : files) {
    auto image = ReadPngFile(f.string());
    if (!image.ok()) return Fail("sheet", std::string(image.status().message()));
    frames.push_back({f.stem().string(), std::move(*image)});
  }
  auto sheet = PackSheet(frames, flags->Has("--tight") ? SheetLayout::kTight : SheetLayout::kGrid, *columns,
                         out.filename().string());
  if (!sheet.ok()) return Fail("sheet", std::string(sheet.status().message()));
  if (auto s = WritePngFile(out.string(), sheet->image); !s.ok()) return Fail("sheet", std::string(s.message()));
  std::filesystem::path atlas = out;
  atlas.replace_extension(".json");
  if (auto s = WriteFileAtomic(atlas.string(), sheet->atlas.dump(2) + "\n"); !s.ok()) {
    return Fail("sheet", std::string(s.message()));
  }
  std::printf("%zu frames, %dx%d, atlas %s\n", frames.size(), sheet->image.width, sheet->image.height,
              atlas.string().c_str());
  return 0;
}

}  // namespace spriteforge::postprocess
