#include "worker/engine/base/schedule.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace spriteforge::engine {
namespace {

// The training noise levels, computed in float32 as the reference does: its rounding
// propagates through a 1000-term cumulative product, so doing this in double would move
// sigmas by more than the 1e-6 the golden tests allow.
std::vector<float> TrainingAlphasCumprod(const SchedulerConfig& c);

std::vector<float> TrainingSigmas(const SchedulerConfig& c) {
  std::vector<float> sigmas = TrainingAlphasCumprod(c);
  for (float& a : sigmas) a = std::sqrt((1.0f - a) / a);
  return sigmas;
}

// The cumulative products of (1 - beta): sigma^2 = (1 - a) / a.
std::vector<float> TrainingAlphasCumprod(const SchedulerConfig& c) {
  const int n = c.num_train_timesteps;
  std::vector<float> betas(n);
  if (c.beta_schedule == "scaled_linear") {
    // float32 linspace as the reference computes it: from the start for the first half,
    // from the end for the second.
    const float start = std::sqrt(static_cast<float>(c.beta_start));
    const float end = std::sqrt(static_cast<float>(c.beta_end));
    const float step = (end - start) / static_cast<float>(n - 1);
    for (int i = 0; i < n; ++i) {
      float v = i < n / 2 ? start + step * static_cast<float>(i)
                          : end - step * static_cast<float>(n - 1 - i);
      betas[i] = v * v;
    }
  } else {  // linear
    const float start = static_cast<float>(c.beta_start), end = static_cast<float>(c.beta_end);
    const float step = (end - start) / static_cast<float>(n - 1);
    for (int i = 0; i < n; ++i) {
      betas[i] = i < n / 2 ? start + step * static_cast<float>(i) : end - step * static_cast<float>(n - 1 - i);
    }
  }
  // The cumulative product accumulates in double and rounds each output to float32.
  std::vector<float> cumprod(n);
  double accumulated = 1.0;
  for (int i = 0; i < n; ++i) {
    accumulated *= static_cast<double>(1.0f - betas[i]);
    cumprod[i] = static_cast<float>(accumulated);
  }
  return cumprod;
}

// diffusers' LCMScheduler / TCDScheduler timesteps (see MakeSchedule in the header).
absl::StatusOr<Schedule> DistilledSchedule(const SchedulerConfig& config, int steps) {
  constexpr int kOriginalSteps = 50;
  if (steps > kOriginalSteps) {
    return absl::InvalidArgumentError(absl::StrCat("lcm and tcd run at most ", kOriginalSteps, " steps, got ", steps));
  }
  const int k = config.num_train_timesteps / kOriginalSteps;
  Schedule s;
  s.alphas_cumprod = TrainingAlphasCumprod(config);
  const double spacing = static_cast<double>(kOriginalSteps) / steps;  // numpy's linspace step
  for (int i = 0; i < steps; ++i) {
    const int index = static_cast<int>(std::floor(i * spacing));
    s.timesteps.push_back(static_cast<double>((kOriginalSteps - index) * k - 1));
  }
  for (double t : s.timesteps) {
    const float a = s.alphas_cumprod[static_cast<size_t>(t)];
    s.sigmas.push_back(static_cast<float>(std::sqrt((1.0f - a) / a)));
  }
  s.sigmas.push_back(0.0);
  s.init_noise_sigma = 1.0;
  return s;
}

// Linear interpolation of sigma at fractional timestep t.
double Interp(const std::vector<float>& sigmas, double t) {
  if (t <= 0) return sigmas.front();
  if (t >= sigmas.size() - 1) return sigmas.back();
  size_t lo = static_cast<size_t>(std::floor(t));
  double w = t - lo;
  return sigmas[lo] * (1 - w) + sigmas[lo + 1] * w;
}

// Inverse of Interp in log-sigma space: the (fractional) timestep of a noise level.
double SigmaToT(double sigma, const std::vector<float>& log_sigmas) {
  const double log_sigma = std::log(std::max(sigma, 1e-10));
  const int n = static_cast<int>(log_sigmas.size());
  int low = 0;
  for (int i = 0; i < n; ++i) if (log_sigma - log_sigmas[i] >= 0) low = i;
  low = std::min(low, n - 2);
  const float lo = log_sigmas[low], hi = log_sigmas[low + 1];
  const float span = lo - hi;  // float32, as the reference subtracts two float32 values
  double w = std::clamp((lo - log_sigma) / span, 0.0, 1.0);
  return (1 - w) * low + w * (low + 1);
}

// Karras et al. (2022) noise levels: evenly spaced in sigma^(1/rho), rho = 7.
std::vector<double> KarrasSigmas(double sigma_min, double sigma_max, int steps) {
  const double rho = 7.0;
  const double min_inv = std::pow(sigma_min, 1 / rho), max_inv = std::pow(sigma_max, 1 / rho);
  std::vector<double> out(steps);
  for (int i = 0; i < steps; ++i) {
    // i * (1 / (steps - 1)), not i / (steps - 1): the two differ in the last bit.
    double ramp = steps == 1 ? 0.0 : (i == steps - 1 ? 1.0 : i * (1.0 / (steps - 1)));
    out[i] = std::pow(max_inv + ramp * (min_inv - max_inv), rho);
  }
  return out;
}

}  // namespace

bool TakesOwnTimesteps(SamplerKind sampler) { return sampler == SamplerKind::kLcm || sampler == SamplerKind::kTcd; }

absl::Status CheckSamplerSchedule(SamplerKind sampler, ScheduleKind schedule) {
  if (!TakesOwnTimesteps(sampler) || schedule == ScheduleKind::kNormal) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("sampler ", SamplerName(sampler),
                                                 " uses its own timesteps: the schedule must be normal, got ",
                                                 ScheduleName(schedule)));
}

absl::StatusOr<Schedule> MakeSchedule(const SchedulerConfig& config, SamplerKind sampler,
                                      ScheduleKind kind, int steps) {
  RETURN_IF_ERROR(CheckSamplerSchedule(sampler, kind));
  if (kind == ScheduleKind::kSgmUniform) kind = ScheduleKind::kTrailing;
  const int n = config.num_train_timesteps;
  if (steps < 1 || steps > n) {
    return absl::InvalidArgumentError(absl::StrCat("steps must be 1..", n, ", got ", steps));
  }
  if (config.beta_schedule != "scaled_linear" && config.beta_schedule != "linear") {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported beta_schedule '", config.beta_schedule, "'"));
  }
  if (TakesOwnTimesteps(sampler)) return DistilledSchedule(config, steps);
  const std::vector<float> train = TrainingSigmas(config);
  std::vector<float> log_train(n);
  for (int i = 0; i < n; ++i) log_train[i] = static_cast<float>(std::log(static_cast<double>(train[i])));
  const bool dpm = sampler == SamplerKind::kDpmpp2m;

  // Spacing of the discrete timesteps. DPM++ divides by steps + 1 and drops the last, as
  // its reference scheduler does.
  std::vector<double> t;
  if (kind == ScheduleKind::kTrailing) {
    const double ratio = static_cast<double>(n) / steps;
    for (int i = 0; i < steps; ++i) t.push_back(std::round(n - i * ratio) - 1);
  } else if (dpm) {
    const int ratio = n / (steps + 1);
    for (int i = steps; i >= 1; --i) t.push_back(static_cast<double>(i * ratio + config.steps_offset));
  } else {
    const int ratio = n / steps;
    for (int i = steps - 1; i >= 0; --i) t.push_back(static_cast<double>(i * ratio + config.steps_offset));
  }

  Schedule s;
  if (kind == ScheduleKind::kKarras) {
    // The Euler family spans the noise levels of its spaced timesteps; DPM++ spans the
    // whole training range. Both as their reference schedulers do.
    double lo, hi;
    if (dpm) {
      lo = *std::min_element(train.begin(), train.end());
      hi = *std::max_element(train.begin(), train.end());
    } else {
      hi = Interp(train, t.front());
      lo = Interp(train, t.back());
    }
    s.sigmas = KarrasSigmas(lo, hi, steps);
    t.clear();
    for (double v : s.sigmas) {
      double ti = SigmaToT(v, log_train);
      t.push_back(dpm ? std::round(ti) : ti);  // DPM++ needs integer timesteps
    }
  } else {
    for (double ti : t) s.sigmas.push_back(Interp(train, ti));
  }
  s.sigmas.push_back(0.0);
  // The reference stores both in float32.
  for (double& v : s.sigmas) v = static_cast<float>(v);
  for (double& v : t) v = static_cast<float>(v);
  s.timesteps = t;

  const double max_sigma = *std::max_element(s.sigmas.begin(), s.sigmas.end());
  if (dpm) {
    s.init_noise_sigma = 1.0;
  } else if (kind == ScheduleKind::kTrailing) {
    s.init_noise_sigma = max_sigma;
  } else {
    s.init_noise_sigma = std::sqrt(max_sigma * max_sigma + 1);
  }
  return s;
}

absl::StatusOr<Schedule> LastSteps(const Schedule& full, double strength) {
  const int steps = static_cast<int>(full.timesteps.size());
  if (!(strength > 0 && strength <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat("strength must be in (0, 1], got ", strength));
  }
  const int keep = std::min(static_cast<int>(steps * strength), steps);
  if (keep < 1) {
    return absl::InvalidArgumentError(absl::StrCat("strength ", strength, " of ", steps,
                                                   " steps runs no step: int(steps * strength) must be at least 1"));
  }
  Schedule s = full;
  s.timesteps.erase(s.timesteps.begin(), s.timesteps.begin() + (steps - keep));
  s.sigmas.erase(s.sigmas.begin(), s.sigmas.begin() + (steps - keep));
  return s;
}

}  // namespace spriteforge::engine
