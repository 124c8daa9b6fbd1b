#include "worker/sprite.h"

#include <nlohmann/json.hpp>

#include "common/sprite/postprocess.h"

namespace spriteforge::worker {
namespace {

std::string& PaletteFolder() {
  static std::string folder;
  return folder;
}

}  // namespace

void SetPaletteFolder(const std::string& folder) { PaletteFolder() = folder; }

SpriteMaker::SpriteMaker(const std::string& postprocess_json) : json_(postprocess_json) {}

absl::StatusOr<std::string> SpriteMaker::Make(const RasterImage& render, const PngText& text) const {
  const auto section = nlohmann::json::parse(json_, nullptr, false);
  if (section.is_discarded()) return absl::InvalidArgumentError("postprocess: not valid JSON");
  postprocess::PaletteAccess access;
  access.folder = PaletteFolder();
  auto options = postprocess::ParsePostprocessOptions(section, access);
  if (!options.ok()) return options.status();
  auto sprite = postprocess::RunPostprocess(render, *options);
  if (!sprite.ok()) return sprite.status();
  return EncodePng(*sprite, text);
}

}  // namespace spriteforge::worker
