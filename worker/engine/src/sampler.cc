#include "worker/engine/src/sampler.h"

#include <cmath>

namespace spriteforge::engine {
namespace {

// The reference keeps sigmas in float32 and derives every step coefficient from them in
// float32, and rounds the sample to float32 before each update. Both are reproduced here:
// over 30 steps of a sensitive model the differences otherwise grow past 1e-6.
using F = float;

bool Continue(const StepFn& on_step, int step, int total, const torch::Tensor& denoised) {
  return !on_step || on_step(step, total, denoised);
}

torch::Tensor RoundedToFloat32(const torch::Tensor& x) { return x.to(torch::kFloat).to(x.scalar_type()); }

torch::Tensor Euler(const Schedule& s, torch::Tensor x, const EpsilonFn& eps, const StepFn& on_step,
                    const NoiseFn* noise) {
  const int n = static_cast<int>(s.timesteps.size());
  for (int i = 0; i < n; ++i) {
    const F sigma = static_cast<F>(s.sigmas[i]), next = static_cast<F>(s.sigmas[i + 1]);
    const F scale = std::sqrt(sigma * sigma + F(1));
    torch::Tensor e = eps(x / static_cast<double>(scale), s.timesteps[i], i);
    torch::Tensor sample = RoundedToFloat32(x);
    torch::Tensor x0 = sample - static_cast<double>(sigma) * e;
    torch::Tensor derivative = (sample - x0) / static_cast<double>(sigma);
    if (!noise) {
      x = sample + derivative * static_cast<double>(next - sigma);
    } else {
      const F up = std::sqrt(next * next * (sigma * sigma - next * next) / (sigma * sigma));
      const F down = std::sqrt(next * next - up * up);
      x = sample + derivative * static_cast<double>(down - sigma);
      x = x + (*noise)(i).to(x.options()) * static_cast<double>(up);
    }
    if (!Continue(on_step, i + 1, n, x0)) throw CancelledError();
  }
  return x;
}

// DPM-Solver++(2M) in the alpha/sigma formulation: data prediction, second-order
// multistep with the midpoint rule, first order on the first and the final step.
torch::Tensor Dpmpp2m(const Schedule& s, torch::Tensor x, const EpsilonFn& eps, const StepFn& on_step) {
  const int n = static_cast<int>(s.timesteps.size());
  struct Level {
    F alpha, sigma, lambda;
  };
  auto level = [](double k_sigma) {
    const F sig = static_cast<F>(k_sigma);
    const F alpha = F(1) / std::sqrt(sig * sig + F(1));
    const F sigma = sig * alpha;
    return Level{alpha, sigma, std::log(alpha) - std::log(sigma)};  // lambda = +inf at sigma 0
  };
  torch::Tensor previous_x0;
  for (int i = 0; i < n; ++i) {
    const Level cur = level(s.sigmas[i]), next = level(s.sigmas[i + 1]);
    torch::Tensor e = eps(x, s.timesteps[i], i);
    torch::Tensor x0 = (x - static_cast<double>(cur.sigma) * e) / static_cast<double>(cur.alpha);
    torch::Tensor sample = RoundedToFloat32(x);
    const F h = next.lambda - cur.lambda;
    const F decay = next.alpha * (std::exp(-h) - F(1));  // -1 at the final, noise-free step
    const F ratio = next.sigma / cur.sigma;
    if (i == 0 || i == n - 1) {
      x = static_cast<double>(ratio) * sample - static_cast<double>(decay) * x0;
    } else {
      const F r = (cur.lambda - level(s.sigmas[i - 1]).lambda) / h;
      torch::Tensor d1 = static_cast<double>(F(1) / r) * (x0 - previous_x0);
      x = static_cast<double>(ratio) * sample - static_cast<double>(decay) * x0 -
          static_cast<double>(F(0.5) * decay) * d1;
    }
    previous_x0 = x0;
    if (!Continue(on_step, i + 1, n, x0)) throw CancelledError();
  }
  return x;
}

// Latent consistency models (diffusers' LCMScheduler): predict x0, apply the consistency
// boundary condition (c_skip, c_out at timestep * 10 with sigma_data 0.5), then noise it
// to the next timestep with fresh noise, except after the last step.
torch::Tensor Lcm(const Schedule& s, torch::Tensor x, const EpsilonFn& eps, const NoiseFn& noise,
                  const StepFn& on_step) {
  const int n = static_cast<int>(s.timesteps.size());
  for (int i = 0; i < n; ++i) {
    const int64_t t = static_cast<int64_t>(s.timesteps[i]);
    const int64_t prev = i + 1 < n ? static_cast<int64_t>(s.timesteps[i + 1]) : t;
    const F alpha = s.alphas_cumprod[t], alpha_prev = s.alphas_cumprod[prev];
    const F scaled_t = static_cast<F>(t) * F(10);
    const F c_skip = F(0.25) / (scaled_t * scaled_t + F(0.25));
    const F c_out = scaled_t / std::sqrt(scaled_t * scaled_t + F(0.25));
    torch::Tensor e = eps(x, s.timesteps[i], i);
    torch::Tensor sample = RoundedToFloat32(x);
    torch::Tensor x0 = (sample - static_cast<double>(std::sqrt(F(1) - alpha)) * e) / static_cast<double>(std::sqrt(alpha));
    torch::Tensor denoised = static_cast<double>(c_out) * x0 + static_cast<double>(c_skip) * sample;
    if (i + 1 < n) {
      x = static_cast<double>(std::sqrt(alpha_prev)) * denoised +
          static_cast<double>(std::sqrt(F(1) - alpha_prev)) * noise(i).to(denoised.options());
    } else {
      x = denoised;
    }
    if (!Continue(on_step, i + 1, n, denoised)) throw CancelledError();
  }
  return x;
}

// Trajectory consistency distillation (diffusers' TCDScheduler): predict x0, move to the
// earlier timestep s = floor((1 - gamma) * t_next) along the predicted noise, then back to
// t_next with fresh noise (gamma > 0, not after the last step). The last step ends at s = 0.
torch::Tensor Tcd(const Schedule& s, torch::Tensor x, const EpsilonFn& eps, const NoiseFn& noise,
                  const StepFn& on_step, double gamma) {
  const int n = static_cast<int>(s.timesteps.size());
  for (int i = 0; i < n; ++i) {
    const int64_t t = static_cast<int64_t>(s.timesteps[i]);
    const int64_t prev = i + 1 < n ? static_cast<int64_t>(s.timesteps[i + 1]) : 0;
    // float32 product, as the reference multiplies an integer tensor by a Python float.
    const int64_t ts = static_cast<int64_t>(std::floor(static_cast<F>(1.0 - gamma) * static_cast<F>(prev)));
    const F alpha = s.alphas_cumprod[t], alpha_prev = s.alphas_cumprod[prev], alpha_s = s.alphas_cumprod[ts];
    torch::Tensor e = eps(x, s.timesteps[i], i);
    torch::Tensor sample = RoundedToFloat32(x);
    torch::Tensor x0 = (sample - static_cast<double>(std::sqrt(F(1) - alpha)) * e) / static_cast<double>(std::sqrt(alpha));
    torch::Tensor noised = static_cast<double>(std::sqrt(alpha_s)) * x0 + static_cast<double>(std::sqrt(F(1) - alpha_s)) * e;
    if (gamma > 0 && i + 1 < n) {
      const F ratio = alpha_prev / alpha_s;
      x = static_cast<double>(std::sqrt(ratio)) * noised +
          static_cast<double>(std::sqrt(F(1) - ratio)) * noise(i).to(noised.options());
    } else {
      x = noised;
    }
    if (!Continue(on_step, i + 1, n, x0)) throw CancelledError();
  }
  return x;
}

}  // namespace

torch::Tensor AddNoise(SamplerKind sampler, const Schedule& s, const torch::Tensor& x0, const torch::Tensor& noise) {
  switch (sampler) {
    case SamplerKind::kEuler:
    case SamplerKind::kEulerAncestral:
      return x0 + noise * s.sigmas.front();
    case SamplerKind::kDpmpp2m: {
      const F sigma = static_cast<F>(s.sigmas.front());
      const F alpha = F(1) / std::sqrt(sigma * sigma + F(1));
      return static_cast<double>(alpha) * x0 + static_cast<double>(sigma * alpha) * noise;
    }
    case SamplerKind::kLcm:
    case SamplerKind::kTcd: {
      const F alpha = s.alphas_cumprod[static_cast<size_t>(s.timesteps.front())];
      return static_cast<double>(std::sqrt(alpha)) * x0 + static_cast<double>(std::sqrt(F(1) - alpha)) * noise;
    }
  }
  return x0;
}

torch::Tensor Sample(SamplerKind sampler, const Schedule& schedule, torch::Tensor x,
                     const EpsilonFn& epsilon, const NoiseFn& noise, const StepFn& on_step,
                     double tcd_gamma) {
  switch (sampler) {
    case SamplerKind::kEuler:
      return Euler(schedule, x, epsilon, on_step, nullptr);
    case SamplerKind::kEulerAncestral:
      return Euler(schedule, x, epsilon, on_step, &noise);
    case SamplerKind::kDpmpp2m:
      return Dpmpp2m(schedule, x, epsilon, on_step);
    case SamplerKind::kLcm:
      return Lcm(schedule, x, epsilon, noise, on_step);
    case SamplerKind::kTcd:
      return Tcd(schedule, x, epsilon, noise, on_step, tcd_gamma);
  }
  return x;
}

}  // namespace spriteforge::engine
