#include "worker/sprite.h"

#include <nlohmann/json.hpp>
#include "common/sprite/postprocess.h"
#include "common/sprite/spec.h"
#include "common/status_macros.h"

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
  RETURN_IF_ERROR(options_);
  ASSIGN_OR_RETURN(auto sprite, postprocess::RunPostprocess(render, *options_));
  return EncodePng(sprite, text);
}

}  // namespace spriteforge::worker
