// Noise schedules: discrete timesteps and sigmas for a number of inference steps, in
// double precision, matching the reference's discrete schedulers.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace spriteforge::engine {

enum class SamplerKind { kEuler, kEulerAncestral, kDpmpp2m };
enum class ScheduleKind { kNormal /* leading spacing */, kTrailing, kKarras };

absl::StatusOr<SamplerKind> ParseSampler(const std::string& name);   // euler | euler_ancestral (alias euler_a) | dpmpp_2m
absl::StatusOr<ScheduleKind> ParseSchedule(const std::string& name); // normal | trailing | karras

// scheduler_config.json fields that matter (SDXL base defaults).
struct SchedulerConfig {
  double beta_start = 0.00085;
  double beta_end = 0.012;
  std::string beta_schedule = "scaled_linear";
  int num_train_timesteps = 1000;
  int steps_offset = 1;
};

struct Schedule {
  std::vector<double> timesteps;  // steps entries (model's t input)
  std::vector<double> sigmas;     // steps + 1 entries, last is 0
  double init_noise_sigma = 1.0;  // initial latents = randn * init_noise_sigma
};

absl::StatusOr<Schedule> MakeSchedule(const SchedulerConfig& config, SamplerKind sampler,
                                      ScheduleKind schedule, int steps);

}  // namespace spriteforge::engine
