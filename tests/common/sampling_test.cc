// Sampler and schedule names, and the batch key: the one rule the planner groups by and the
// worker checks.
#include "common/sampling.h"

#include <gtest/gtest.h>

#include <set>

namespace spriteforge {
namespace {

TEST(Sampling, NamesRoundTripAndUnknownNamesListTheValidOnes) {
  for (int v = v1::Sampler_MIN + 1; v <= v1::Sampler_MAX; ++v) {
    const auto sampler = static_cast<v1::Sampler>(v);
    EXPECT_EQ(*ParseSampler(SamplerName(sampler)), sampler);
  }
  for (int v = v1::Schedule_MIN + 1; v <= v1::Schedule_MAX; ++v) {
    const auto schedule = static_cast<v1::Schedule>(v);
    EXPECT_EQ(*ParseSchedule(ScheduleName(schedule)), schedule);
  }
  EXPECT_EQ(SamplerName(v1::SAMPLER_EULER_ANCESTRAL), "euler_ancestral");
  EXPECT_EQ(ParseSampler("ddim").status().message(),
            "unknown sampler 'ddim' (expected euler, euler_ancestral, dpmpp_2m, lcm or tcd)");
  EXPECT_EQ(ParseSchedule("unspecified").status().message(),
            "unknown schedule 'unspecified' (expected normal, trailing, sgm_uniform or karras)");
  EXPECT_FALSE(ParseSampler("").ok());
  EXPECT_FALSE(ParseSampler("EULER").ok());  // names are lower case, as manifests write them
}

TEST(Sampling, EverySamplerHasItsOwnA1111Name) {
  std::set<std::string> names;
  for (int v = v1::Sampler_MIN + 1; v <= v1::Sampler_MAX; ++v) {
    EXPECT_TRUE(names.insert(A1111SamplerName(static_cast<v1::Sampler>(v))).second) << v;
  }
  EXPECT_EQ(A1111SamplerName(v1::SAMPLER_EULER_ANCESTRAL), "Euler a");
  EXPECT_EQ(A1111SamplerName(v1::SAMPLER_DPMPP_2M), "DPM++ 2M");
}

TEST(Sampling, LcmAndTcdRunOnlyWithTheNormalSchedule) {
  EXPECT_TRUE(CheckSamplerSchedule(v1::SAMPLER_LCM, v1::SCHEDULE_NORMAL).ok());
  EXPECT_TRUE(CheckSamplerSchedule(v1::SAMPLER_DPMPP_2M, v1::SCHEDULE_KARRAS).ok());
  EXPECT_EQ(CheckSamplerSchedule(v1::SAMPLER_LCM, v1::SCHEDULE_SGM_UNIFORM).message(),
            "sampler lcm uses its own timesteps: the schedule must be normal, got sgm_uniform");
  EXPECT_FALSE(CheckSamplerSchedule(v1::SAMPLER_TCD, v1::SCHEDULE_TRAILING).ok());
}

v1::SamplingParams Base() {
  v1::SamplingParams s;
  s.set_width(128);
  s.set_height(128);
  s.set_steps(4);
  s.set_cfg(5);
  s.set_sampler(v1::SAMPLER_EULER);
  s.set_schedule(v1::SCHEDULE_NORMAL);
  return s;
}

TEST(Sampling, EveryFieldOfSamplingParamsSeparatesBatches) {
  const v1::ImageParams image;
  const std::string base = BatchKeyOf("tiny", Base(), image);
  EXPECT_EQ(BatchKeyOf("tiny", Base(), image), base);
  // Change each field in turn, by reflection, so a field added later is covered too.
  const auto* descriptor = v1::SamplingParams::descriptor();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    v1::SamplingParams changed = Base();
    const auto* field = descriptor->field(i);
    const auto* reflection = changed.GetReflection();
    switch (field->cpp_type()) {
      case google::protobuf::FieldDescriptor::CPPTYPE_INT32: reflection->SetInt32(&changed, field, 999); break;
      case google::protobuf::FieldDescriptor::CPPTYPE_DOUBLE: reflection->SetDouble(&changed, field, 0.5); break;
      case google::protobuf::FieldDescriptor::CPPTYPE_BOOL: reflection->SetBool(&changed, field, true); break;
      case google::protobuf::FieldDescriptor::CPPTYPE_ENUM: reflection->SetEnumValue(&changed, field, 4); break;
      case google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE:
        // one more LoRA or ControlNet (an empty one); an IP-Adapter where there was none
        if (field->is_repeated()) reflection->AddMessage(&changed, field);
        else reflection->MutableMessage(&changed, field);
        break;
      default: ADD_FAILURE() << "no change written for " << field->name();
    }
    EXPECT_NE(BatchKeyOf("tiny", changed, image), base) << field->name();
  }
  EXPECT_NE(BatchKeyOf("other", Base(), image), base);
  v1::ImageParams img2img;
  img2img.set_init_image_sha256("aa");
  EXPECT_NE(BatchKeyOf("tiny", Base(), img2img), base);
  // What differs between images of a batch does not.
  v1::ImageParams other = img2img;
  other.set_init_image_sha256("bb");
  other.set_prompt("knight");
  other.set_seed(7);
  other.set_negative("blurry");
  EXPECT_EQ(BatchKeyOf("tiny", Base(), other), BatchKeyOf("tiny", Base(), img2img));
}

}  // namespace
}  // namespace spriteforge
