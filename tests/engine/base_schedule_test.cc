// Timesteps and sigmas of every sampler x schedule match the reference schedulers.
#include "base/schedule.h"

#include <gtest/gtest.h>

#include <cmath>

#include "golden.h"

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
            "unknown sampler 'ddim' (expected euler, euler_ancestral or dpmpp_2m)");
  EXPECT_FALSE(ParseSchedule("exponential").ok());
}

}  // namespace
}  // namespace spriteforge::engine
