#include "src/sampler.h"

#include <cmath>
#include <limits>

namespace spriteforge::engine {
namespace {

bool Continue(const StepFn& on_step, int step, int total) { return !on_step || on_step(step, total); }

torch::Tensor Euler(const Schedule& s, torch::Tensor x, const EpsilonFn& eps, const StepFn& on_step,
                    const NoiseFn* noise) {
  const int n = static_cast<int>(s.timesteps.size());
  for (int i = 0; i < n; ++i) {
    const double sigma = s.sigmas[i], next = s.sigmas[i + 1];
    torch::Tensor e = eps(x / std::sqrt(sigma * sigma + 1), s.timesteps[i], i);
    // d = (x - x0) / sigma with x0 = x - sigma * eps, i.e. d = eps.
    if (!noise) {
      x = x + e * (next - sigma);
    } else {
      const double up = std::sqrt(next * next * (sigma * sigma - next * next) / (sigma * sigma));
      const double down = std::sqrt(next * next - up * up);
      x = x + e * (down - sigma) + (*noise)(i).to(x.options()) * up;
    }
    if (!Continue(on_step, i + 1, n)) throw CancelledError();
  }
  return x;
}

// DPM-Solver++(2M) in the alpha/sigma formulation: data prediction, second-order
// multistep with the midpoint rule, first order on the first and the final step.
torch::Tensor Dpmpp2m(const Schedule& s, torch::Tensor x, const EpsilonFn& eps,
                      const StepFn& on_step) {
  const int n = static_cast<int>(s.timesteps.size());
  auto alpha = [](double sigma) { return 1.0 / std::sqrt(sigma * sigma + 1); };
  auto lambda = [&](double sigma) {
    return sigma == 0 ? std::numeric_limits<double>::infinity()
                      : std::log(alpha(sigma)) - std::log(sigma * alpha(sigma));
  };
  torch::Tensor previous_x0;
  for (int i = 0; i < n; ++i) {
    const double sigma_s = s.sigmas[i], sigma_t = s.sigmas[i + 1];
    const double alpha_s = alpha(sigma_s), alpha_t = alpha(sigma_t);
    torch::Tensor e = eps(x, s.timesteps[i], i);
    torch::Tensor x0 = (x - (sigma_s * alpha_s) * e) / alpha_s;
    const double h = lambda(sigma_t) - lambda(sigma_s);
    const double decay = std::exp(-h) - 1.0;  // -1 at the final, noise-free step
    const double ratio = sigma_t == 0 ? 0.0 : (sigma_t * alpha_t) / (sigma_s * alpha_s);
    const bool first_order = i == 0 || i == n - 1;
    if (first_order) {
      x = ratio * x - (alpha_t * decay) * x0;
    } else {
      const double h_prev = lambda(sigma_s) - lambda(s.sigmas[i - 1]);
      const double r = h_prev / h;
      torch::Tensor d1 = (x0 - previous_x0) * (1.0 / r);
      x = ratio * x - (alpha_t * decay) * x0 - 0.5 * (alpha_t * decay) * d1;
    }
    previous_x0 = x0;
    if (!Continue(on_step, i + 1, n)) throw CancelledError();
  }
  return x;
}

}  // namespace

torch::Tensor Sample(SamplerKind sampler, const Schedule& schedule, torch::Tensor x,
                     const EpsilonFn& epsilon, const NoiseFn& noise, const StepFn& on_step) {
  switch (sampler) {
    case SamplerKind::kEuler:
      return Euler(schedule, x, epsilon, on_step, nullptr);
    case SamplerKind::kEulerAncestral:
      return Euler(schedule, x, epsilon, on_step, &noise);
    case SamplerKind::kDpmpp2m:
      return Dpmpp2m(schedule, x, epsilon, on_step);
  }
  return x;
}

}  // namespace spriteforge::engine
