#include "coordinator/core/submit_check.h"

#include "absl/strings/str_cat.h"
#include "common/sprite/postprocess.h"
#include "common/status_macros.h"

namespace spriteforge::coordinator {

absl::Status CheckSubmission(const v1::SubmitJobRequest& request, const Manifest& manifest, const std::string& file) {
  if (!request.model_override().empty()) {
    if (auto problem = ModelNameProblem(request.model_override()); !problem.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("model override: ", problem));
    }
  }
  // The manifest's `postprocess` section was checked when it was parsed (ParsePostprocessSpec).
  return absl::OkStatus();
}

absl::Status CheckQuota(Store& store, const std::string& owner, const ClientLimits& limits, int64_t images) {
  if (limits.max_queued_images <= 0 && limits.max_running_jobs <= 0) return absl::OkStatus();
  ASSIGN_OR_RETURN(auto backlog, store.OwnerBacklog(owner));
  if (limits.max_running_jobs > 0 && backlog.jobs + 1 > limits.max_running_jobs) {
    return absl::ResourceExhaustedError(absl::StrCat("max_running_jobs limit of ", limits.max_running_jobs, " for '",
                                                     owner, "': ", backlog.jobs, " jobs unfinished"));
  }
  if (limits.max_queued_images > 0 && backlog.images + images > limits.max_queued_images) {
    return absl::ResourceExhaustedError(absl::StrCat("max_queued_images limit of ", limits.max_queued_images,
                                                     " for '", owner, "': ", backlog.images,
                                                     " images unfinished, this job adds ", images));
  }
  return absl::OkStatus();
}

}  // namespace spriteforge::coordinator
