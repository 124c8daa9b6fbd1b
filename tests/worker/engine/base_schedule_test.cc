// Timesteps and sigmas of every sampler x schedule match the reference schedulers.
#include "worker/engine/base/schedule.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tests/worker/engine/golden.h"

namespace spriteforge::engine {
namespace {

std::vector<double> Golden(const std::string& name) {
  const TensorView* t = testing::GoldenVectors().Find(name);
  EXPECT_NE(t, nullptr) << name;
  if (!t) return {};
  const double* p = static_cast<const double*>(t->data);
  return std::vector<double>(p, p + t->nbytes / sizeof(double));
}

TEST(Schedule, MatchesReferenceTimestepsAndSigmas) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  for (const auto& c : testing::kSchedulerCases) {
    for (int steps : {4, 20, 30}) {
      const std::string prefix = std::string("sched.") + c.name + "." + std::to_string(steps);
      auto s = MakeSchedule(SchedulerConfig{}, c.sampler, c.schedule, steps);
      ASSERT_TRUE(s.ok()) << s.status();
      std::vector<double> timesteps = Golden(prefix + ".timesteps");
      std::vector<double> sigmas = Golden(prefix + ".sigmas");
      ASSERT_EQ(s->timesteps.size(), timesteps.size()) << prefix;
      ASSERT_EQ(s->sigmas.size(), sigmas.size()) << prefix;
      for (size_t i = 0; i < timesteps.size(); ++i) {
        // Integer timesteps must be exact. Karras timesteps of the Euler family are
        // fractional, derived through float32 logarithms whose last bit depends on the
        // math library: those agree to one float32 rounding step.
        if (timesteps[i] == std::round(timesteps[i])) {
          EXPECT_EQ(s->timesteps[i], timesteps[i]) << prefix << " timestep " << i;
        } else {
          EXPECT_NEAR(s->timesteps[i], timesteps[i], 1e-6 * timesteps[i]) << prefix << " timestep " << i;
        }
      }
      for (size_t i = 0; i < sigmas.size(); ++i) {
        EXPECT_NEAR(s->sigmas[i], sigmas[i], 1e-6 * std::fabs(sigmas[i])) << prefix << " sigma " << i;
      }
    }
  }
}

TEST(Schedule, RejectsBadInput) {
  EXPECT_FALSE(MakeSchedule(SchedulerConfig{}, SamplerKind::kEuler, ScheduleKind::kNormal, 0).ok());
  EXPECT_FALSE(ParseSampler("ddim").ok());
  EXPECT_EQ(ParseSampler("ddim").status().message(),
            "unknown sampler 'ddim' (expected euler, euler_ancestral, dpmpp_2m, lcm or tcd)");
  EXPECT_FALSE(ParseSchedule("exponential").ok());
  EXPECT_FALSE(MakeSchedule(SchedulerConfig{}, SamplerKind::kLcm, ScheduleKind::kNormal, 51).ok());
  EXPECT_FALSE(MakeSchedule(SchedulerConfig{}, SamplerKind::kTcd, ScheduleKind::kKarras, 4).ok());
}

// diffusers' LCMScheduler and TCDScheduler (original_inference_steps 50, 1000 training
// steps) take k = 1000 // 50 = 20 and the distillation timesteps
//   origin = [1, 2, ..., 50] * k - 1 = [19, 39, ..., 999], read from the end,
// then the entries at floor(linspace(0, 50, steps, endpoint=False)) = floor(i * 50 / steps):
//   4 steps: indices 0, 12, 25, 37         -> 999 - 20 * index = 999, 759, 499, 259
//   8 steps: indices 0, 6, 12, 18, 25, 31, 37, 43 -> 999, 879, 759, 639, 499, 379, 259, 139
//   1 step : index 0                       -> 999
TEST(Schedule, LcmAndTcdTimestepsAreTheDistillationSchedule) {
  const std::vector<std::pair<int, std::vector<double>>> cases = {
      {4, {999, 759, 499, 259}}, {8, {999, 879, 759, 639, 499, 379, 259, 139}}, {1, {999}}};
  for (SamplerKind sampler : {SamplerKind::kLcm, SamplerKind::kTcd}) {
    for (const auto& [steps, want] : cases) {
      auto s = MakeSchedule(SchedulerConfig{}, sampler, ScheduleKind::kNormal, steps);
      ASSERT_TRUE(s.ok()) << s.status();
      EXPECT_EQ(s->timesteps, want) << steps << " steps";
      EXPECT_EQ(s->init_noise_sigma, 1.0);
      ASSERT_EQ(s->alphas_cumprod.size(), 1000u);
      ASSERT_EQ(s->sigmas.size(), want.size() + 1);
      // sigma of a timestep and its alpha product describe the same noise level.
      const double a = s->alphas_cumprod[static_cast<size_t>(want[0])];
      EXPECT_NEAR(s->sigmas[0], std::sqrt((1 - a) / a), 1e-5);
    }
  }
}

// k-diffusion's sgm_uniform is diffusers' trailing spacing (the diffusers scheduler
// overview maps one to the other): t_i = round(1000 - i * 1000 / steps) - 1.
//   4 steps: 999, 749, 499, 249;  8 steps: 999, 874, 749, 624, 499, 374, 249, 124
TEST(Schedule, SgmUniformIsTrailingSpacing) {
  auto four = MakeSchedule(SchedulerConfig{}, SamplerKind::kEuler, *ParseSchedule("sgm_uniform"), 4);
  ASSERT_TRUE(four.ok());
  EXPECT_EQ(four->timesteps, (std::vector<double>{999, 749, 499, 249}));
  auto eight = MakeSchedule(SchedulerConfig{}, SamplerKind::kEuler, *ParseSchedule("sgm_uniform"), 8);
  ASSERT_TRUE(eight.ok());
  EXPECT_EQ(eight->timesteps, (std::vector<double>{999, 874, 749, 624, 499, 374, 249, 124}));
  auto trailing = MakeSchedule(SchedulerConfig{}, SamplerKind::kEuler, ScheduleKind::kTrailing, 8);
  EXPECT_EQ(eight->sigmas, trailing->sigmas);
}

// img2img keeps the last int(steps * strength) steps: 10 steps at 0.6 run the last 6.
TEST(Schedule, LastStepsKeepsTheTail) {
  auto full = MakeSchedule(SchedulerConfig{}, SamplerKind::kEuler, ScheduleKind::kNormal, 10);
  ASSERT_TRUE(full.ok());
  auto tail = LastSteps(*full, 0.6);
  ASSERT_TRUE(tail.ok());
  EXPECT_EQ(tail->timesteps, std::vector<double>(full->timesteps.begin() + 4, full->timesteps.end()));
  EXPECT_EQ(tail->sigmas, std::vector<double>(full->sigmas.begin() + 4, full->sigmas.end()));
  EXPECT_EQ(LastSteps(*full, 1.0)->timesteps, full->timesteps);
  EXPECT_NE(LastSteps(*full, 0.05).status().message().find("runs no step"), std::string::npos);
  EXPECT_FALSE(LastSteps(*full, 1.5).ok());
}

}  // namespace
}  // namespace spriteforge::engine
