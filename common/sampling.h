// Image parameters as the API carries them (v1::SamplingParams, v1::ImageParams): the names
// manifests and flags give samplers and schedules, and the batch key, the one rule for which
// images render together (the planner groups by it, the worker checks it).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "spriteforge/v1/spriteforge.pb.h"

namespace spriteforge {

// "euler_ancestral" for SAMPLER_EULER_ANCESTRAL: the value's name without its prefix, in
// lower case. Names parse back; anything else is an error listing the valid names.
std::string SamplerName(v1::Sampler sampler);
std::string ScheduleName(v1::Schedule schedule);
absl::StatusOr<v1::Sampler> ParseSampler(const std::string& name);
absl::StatusOr<v1::Schedule> ParseSchedule(const std::string& name);
std::string SamplerNames();   // "euler, euler_ancestral, dpmpp_2m, lcm or tcd"
std::string ScheduleNames();

// A1111's name for a sampler ("Euler a" for SAMPLER_EULER_ANCESTRAL): written in an image's
// parameters text and read by the A1111 dialect.
std::string A1111SamplerName(v1::Sampler sampler);

// lcm and tcd take their own timesteps (the distillation schedule), so they run only with
// the normal schedule; an error names the sampler and the schedule. The service's statement
// of the engine's rule (spriteforge::engine::CheckSamplerSchedule, which common/ may not
// include): manifests and every HTTP dialect reach it through the manifest check, and the
// engine adapter's tests hold the two equal for every pair of values.
absl::Status CheckSamplerSchedule(v1::Sampler sampler, v1::Schedule schedule);

// Images render in one batch only when their keys are equal: same model, same sampling
// parameters (every field: SamplingParams holds only what a batch shares), and img2img for
// all or none (the start images themselves may differ).
std::string BatchKeyOf(const std::string& model, const v1::SamplingParams& sampling, const v1::ImageParams& image);

}  // namespace spriteforge
