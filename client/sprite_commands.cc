#include "client/sprite_commands.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/sprite/control/canny.h"
#include "common/sprite/control/pose_library.h"
#include "common/sprite/postprocess.h"
#include "common/sprite/sheet.h"
#include "common/text.h"

namespace spriteforge::postprocess {
namespace {

int Fail(const char* command, const std::string& message, int code = 1) {
  std::fprintf(stderr, "spriteforge %s: %s\n", command, message.c_str());
  return code;
}

}  // namespace

int PixelateCommand(const PixelateArgs& args) {
  // The flags map onto the manifest's postprocess section, so both share one parser.
  nlohmann::json section = {{"pixelate", args.size}};
  if (!args.method.empty()) section["method"] = args.method;
  if (!args.palette.empty()) section["palette"] = args.palette;
  if (!args.quantizer.empty()) section["quantizer"] = args.quantizer;
  if (!args.dither.empty()) section["dither"] = args.dither;
  if (args.colors) section["colors"] = *args.colors;
  if (args.padding) section["padding"] = *args.padding;
  if (args.transparent) section["background"] = "flood", section["tolerance"] = args.tolerance;
  if (args.crop) section["crop"] = true;
  PaletteAccess own_files;
  own_files.any_path = true;  // the user's own files, on the user's own machine
  auto options = ParsePostprocessOptions(section, own_files);
  if (!options.ok()) return Fail("pixelate", std::string(options.status().message()), 2);

  PngText text;
  const std::string& in = args.in;
  auto image = ReadPngFile(in, &text);
  if (!image.ok()) return Fail("pixelate", std::string(image.status().message()));
  auto sprite = RunPostprocess(*image, *options);
  if (!sprite.ok()) return Fail("pixelate", std::string(sprite.status().message()));
  // Generation parameters travel with the sprite.
  if (auto s = WritePngFile(args.out, *sprite, text); !s.ok()) return Fail("pixelate", std::string(s.message()));
  return 0;
}

int SheetCommand(const SheetArgs& args) {
  if (args.columns < 0) return Fail("sheet", "--columns must be a non-negative integer", 2);
  const std::filesystem::path dir = args.dir;
  const std::filesystem::path out = args.out;
  std::error_code ec;
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (e.path().extension() == ".png" && !std::filesystem::equivalent(e.path(), out, ec)) files.push_back(e.path());
  }
  if (ec) return Fail("sheet", absl::StrCat("cannot read ", dir.string(), ": ", ec.message()));
  if (files.empty()) return Fail("sheet", absl::StrCat("no PNG files in ", dir.string()));
  // Frames in the order of their item index (the number the file name starts with).
  std::sort(files.begin(), files.end(), [](const std::filesystem::path& a, const std::filesystem::path& b) {
    return NaturalLess(a.filename().string(), b.filename().string());
  });
  std::vector<Frame> frames;
  for (const auto& f : files) {
    auto image = ReadPngFile(f.string());
    if (!image.ok()) return Fail("sheet", std::string(image.status().message()));
    frames.push_back({f.stem().string(), std::move(*image)});
  }
  auto sheet = PackSheet(frames, args.tight ? SheetLayout::kTight : SheetLayout::kGrid, args.columns,
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

int PoseListCommand() {
  const std::vector<std::string> sets = control::ListPoseSets();
  if (sets.empty()) return Fail("pose list", std::string(control::BuiltinPoseDir().status().message()));
  for (const auto& name : sets) {
    auto poses = control::LoadBuiltinPoseSet(name);
    if (!poses.ok()) return Fail("pose list", std::string(poses.status().message()));
    std::printf("%-20s %zu poses: %s .. %s\n", name.c_str(), poses->size(), poses->front().name.c_str(),
                poses->back().name.c_str());
  }
  return 0;
}

int PoseShowCommand(const PoseShowArgs& args) {
  int width = 0, height = 0;
  if (auto s = ParseSize(args.size, &width, &height); !s.ok()) return Fail("pose show", std::string(s.message()), 2);
  auto poses = control::LoadPoseSet(args.set);
  if (!poses.ok()) return Fail("pose show", std::string(poses.status().message()));
  std::error_code ec;
  std::filesystem::create_directories(args.out, ec);
  if (ec) return Fail("pose show", absl::StrCat("cannot create ", args.out, ": ", ec.message()));
  for (const auto& pose : *poses) {
    auto image = control::DrawPose(pose.keypoints, width, height);
    if (!image.ok()) return Fail("pose show", std::string(image.status().message()), 2);
    const std::string path = (std::filesystem::path(args.out) / (pose.name + ".png")).string();
    if (auto s = WritePngFile(path, *image); !s.ok()) return Fail("pose show", std::string(s.message()));
  }
  std::printf("%zu poses, %dx%d, in %s\n", poses->size(), width, height, args.out.c_str());
  return 0;
}

int CannyCommand(const CannyArgs& args) {
  auto image = ReadPngFile(args.in);
  if (!image.ok()) return Fail("canny", std::string(image.status().message()));
  auto edges = control::CannyEdges(*image, args.low, args.high);
  if (!edges.ok()) return Fail("canny", std::string(edges.status().message()), 2);
  if (auto s = WritePngFile(args.out, *edges); !s.ok()) return Fail("canny", std::string(s.message()));
  return 0;
}

}  // namespace spriteforge::postprocess
