// The `postprocess:` section as the API carries it (v1::PostprocessSpec): parsed and checked
// once where a manifest is read (palettes by built-in name, colours or a file name, never a
// path), stored with the job, sent with its batches and turned into options once per
// batch where sprites are made.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "common/sprite/postprocess.h"
#include "spriteforge/v1/spriteforge.pb.h"

namespace spriteforge::postprocess {

// Errors name the field: "postprocess.palette: unknown palette ...". `bad_key`, when
// given, receives the section's key the error is about ("" for the section itself).
absl::StatusOr<v1::PostprocessSpec> ParsePostprocessSpec(const nlohmann::json& section,
                                                         std::string* bad_key = nullptr);

// Where sprites are made: a palette file is read from `access.folder`.
absl::StatusOr<PostprocessOptions> OptionsFromSpec(const v1::PostprocessSpec& spec, const PaletteAccess& access);

}  // namespace spriteforge::postprocess
