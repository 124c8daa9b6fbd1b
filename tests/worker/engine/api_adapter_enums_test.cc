// The API's sampler and schedule enums against the engine's: every value the API defines
// has one engine value, named alike in both name tables, and the rule that pairs samplers
// with schedules answers alike on both sides (common/ states it for the service, the engine
// for itself; neither may include the other).
#include <gtest/gtest.h>

#include <set>

#include "common/sampling.h"
#include "spriteforge/engine/engine.h"
#include "worker/engine/adapter/engine_request.h"

namespace spriteforge::engine {
namespace {

namespace pb = google::protobuf;

// Every value of a proto enum but the unspecified one, read from its descriptor, so a value
// added to the proto later is walked too.
template <typename E>
std::vector<E> ApiValues(const pb::EnumDescriptor* type) {
  std::vector<E> values;
  for (int i = 0; i < type->value_count(); ++i) {
    if (type->value(i)->number() != 0) values.push_back(static_cast<E>(type->value(i)->number()));
  }
  return values;
}

TEST(AdapterEnums, EveryApiSamplerIsOneEngineSamplerOfTheSameName) {
  std::set<SamplerKind> reached;
  for (v1::Sampler sampler : ApiValues<v1::Sampler>(v1::Sampler_descriptor())) {
    const std::string name = spriteforge::SamplerName(sampler);
    EXPECT_EQ(*spriteforge::ParseSampler(name), sampler) << name;
    auto kind = ToEngineSampler(sampler);
    ASSERT_TRUE(kind.ok()) << name << ": " << kind.status();
    EXPECT_EQ(SamplerName(*kind), name);
    EXPECT_EQ(*ParseSampler(name), *kind) << name;
    EXPECT_TRUE(reached.insert(*kind).second) << name << " shares its engine sampler";
  }
  EXPECT_FALSE(ToEngineSampler(v1::SAMPLER_UNSPECIFIED).ok());
}

TEST(AdapterEnums, EveryApiScheduleIsOneEngineScheduleOfTheSameName) {
  std::set<ScheduleKind> reached;
  for (v1::Schedule schedule : ApiValues<v1::Schedule>(v1::Schedule_descriptor())) {
    const std::string name = spriteforge::ScheduleName(schedule);
    EXPECT_EQ(*spriteforge::ParseSchedule(name), schedule) << name;
    auto kind = ToEngineSchedule(schedule);
    ASSERT_TRUE(kind.ok()) << name << ": " << kind.status();
    EXPECT_EQ(ScheduleName(*kind), name);
    EXPECT_EQ(*ParseSchedule(name), *kind) << name;
    EXPECT_TRUE(reached.insert(*kind).second) << name << " shares its engine schedule";
  }
  EXPECT_EQ(ToEngineSchedule(v1::SCHEDULE_UNSPECIFIED).status().message(),
            "schedule value 0 is none the engine runs (expected normal, trailing, sgm_uniform or karras)");
}

TEST(AdapterEnums, TheServiceAndTheEngineAllowTheSameSamplerSchedulePairs) {
  int refused = 0;
  for (v1::Sampler sampler : ApiValues<v1::Sampler>(v1::Sampler_descriptor())) {
    for (v1::Schedule schedule : ApiValues<v1::Schedule>(v1::Schedule_descriptor())) {
      const absl::Status service = spriteforge::CheckSamplerSchedule(sampler, schedule);
      const absl::Status engine = CheckSamplerSchedule(*ToEngineSampler(sampler), *ToEngineSchedule(schedule));
      EXPECT_EQ(service, engine) << spriteforge::SamplerName(sampler) << " with " << spriteforge::ScheduleName(schedule);
      if (!engine.ok()) ++refused;
    }
  }
  EXPECT_EQ(refused, 6);  // lcm and tcd with trailing, sgm_uniform and karras
  EXPECT_EQ(CheckSamplerSchedule(SamplerKind::kTcd, ScheduleKind::kKarras).message(),
            "sampler tcd uses its own timesteps: the schedule must be normal, got karras");
}

}  // namespace
}  // namespace spriteforge::engine
