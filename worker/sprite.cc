#include "worker/sprite.h"

#include <nlohmann/json.hpp>
#include "common/sprite/postprocess.h"
#include "common/sprite/spec.h"

namespace spriteforge::worker {
namespace {

std::string& PaletteFolder() {
  static std::string folder;
  return folder;
}

}  // namespace

void SetPaletteFolder(const std::string& folder) { PaletteFolder() = folder; }

namespace {
postprocess::PaletteAccess WorkerPalettes() {
  postprocess::PaletteAccess access;
  access.folder = PaletteFolder();
  return access;
}
}  // namespace

SpriteMaker::SpriteMaker(const v1::PostprocessSpec& spec)
    : options_(postprocess::OptionsFromSpec(spec, WorkerPalettes())) {}

absl::StatusOr<std::string> SpriteMaker::Make(const RasterImage& render, const PngText& text) const {
  if (!options_.ok()) return options_.status();
  auto sprite = postprocess::RunPostprocess(render, *options_);
  if (!sprite.ok()) return sprite.status();
  return EncodePng(*sprite, text);
}

}  // namespace spriteforge::worker
