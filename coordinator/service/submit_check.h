// Checks of a submission beyond the manifest schema, made before anything is stored: a
// model override must be a plain name, and the `postprocess` section must parse as the
// workers will parse it, with palettes given by name or colours, never by path.
#pragma once

#include "absl/status/status.h"
#include "spriteforge/common/manifest.h"
#include "spriteforge/v1/spriteforge.pb.h"

namespace spriteforge::coordinator {

// InvalidArgument "FILE: FIELD: problem".
absl::Status CheckSubmission(const v1::SubmitJobRequest& request, const Manifest& manifest, const std::string& file);

}  // namespace spriteforge::coordinator
