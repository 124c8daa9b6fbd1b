// Noise schedules: discrete timesteps and sigmas for a number of inference steps, in
// double precision, matching the reference's discrete schedulers.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "spriteforge/engine/engine.h"  // SamplerKind, ScheduleKind

namespace spriteforge::engine {

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
  // lcm and tcd: the training schedule's cumulative alpha products (float32, as the
  // reference keeps them), indexed by integer timestep.
  std::vector<float> alphas_cumprod;
};

// lcm and tcd: the samplers CheckSamplerSchedule (engine.h) holds to the normal schedule.
bool TakesOwnTimesteps(SamplerKind sampler);

// lcm and tcd take timesteps from the distillation schedule of `original_steps` (50, as
// diffusers' LCMScheduler and TCDScheduler default): every k = train_steps / 50 -th
// timestep, k-1 first, read from the end at floor(i * 50 / steps); steps must be 1..50.
absl::StatusOr<Schedule> MakeSchedule(const SchedulerConfig& config, SamplerKind sampler,
                                      ScheduleKind schedule, int steps);

// img2img: the last int(steps * strength) steps of `full` (an error if that is none).
absl::StatusOr<Schedule> LastSteps(const Schedule& full, double strength);

}  // namespace spriteforge::engine
