// Checks of a submission beyond the manifest schema, made before anything is stored: a
// model override must be a plain name. (The `postprocess` section is checked by the
// manifest parser, which builds its v1::PostprocessSpec.)
#pragma once

#include "absl/status/status.h"
#include "common/manifest.h"
#include "coordinator/core/limits.h"
#include "coordinator/store/store.h"
#include "spriteforge/v1/spriteforge.pb.h"

namespace spriteforge::coordinator {

// InvalidArgument "FILE: FIELD: problem".
absl::Status CheckSubmission(const v1::SubmitJobRequest& request, const Manifest& manifest, const std::string& file);

// ResourceExhausted "max_queued_images limit of N for 'alice': ..." when `images` more
// would take the owner's unfinished work beyond its limits.
absl::Status CheckQuota(Store& store, const std::string& owner, const ClientLimits& limits, int64_t images);

}  // namespace spriteforge::coordinator
