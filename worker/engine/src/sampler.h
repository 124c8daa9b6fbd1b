// Samplers over a Schedule: the denoising loop, independent of any model.
#pragma once

#include <functional>

#include <torch/torch.h>

#include "worker/engine/base/schedule.h"

namespace spriteforge::engine {

// Predicts epsilon for latents at step i. The sampler passes the model input already
// scaled as its scale_model_input does (1/sqrt(sigma^2+1) for the Euler family, identity
// for DPM++ 2M in its alpha/sigma formulation) and the timestep t.
using EpsilonFn = std::function<torch::Tensor(const torch::Tensor& x_scaled, double t, int step)>;
// Fresh standard-normal noise shaped like x for ancestral step i (per-image generators).
using NoiseFn = std::function<torch::Tensor(int step)>;
// Called after each step with the step's denoised prediction (the sampler's estimate of
// the final latents, for previews); return false to stop (the loop then throws).
using StepFn = std::function<bool(int step, int total, const torch::Tensor& denoised)>;

// Runs the full loop from x (initial noise already times init_noise_sigma); returns the final latents
// or throws CancelledError if `on_step` returned false. Noise is drawn by euler_ancestral at
// every step, by lcm at every step but the last, by tcd at every step but the last when
// tcd_gamma > 0.
torch::Tensor Sample(SamplerKind sampler, const Schedule& schedule, torch::Tensor x,
                     const EpsilonFn& epsilon, const NoiseFn& noise, const StepFn& on_step,
                     double tcd_gamma = 0.3);

// img2img: clean latents x0 noised to the schedule's first step, as each sampler's
// reference scheduler does it (add_noise): x0 + sigma * noise for the Euler family,
// alpha * x0 + sigma * noise in the variance-preserving form for the others.
torch::Tensor AddNoise(SamplerKind sampler, const Schedule& schedule, const torch::Tensor& x0,
                       const torch::Tensor& noise);

struct CancelledError : std::runtime_error {
  CancelledError() : std::runtime_error("cancelled") {}
};

}  // namespace spriteforge::engine
