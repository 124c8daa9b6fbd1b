#include "common/sampling.h"

#include <vector>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace spriteforge {
namespace {

namespace pb = google::protobuf;

std::string ValueName(const pb::EnumDescriptor* type, int number, const std::string& prefix) {
  const pb::EnumValueDescriptor* value = type->FindValueByNumber(number);
  if (value == nullptr || value->number() == 0) return "";
  return absl::AsciiStrToLower(value->name().substr(prefix.size()));
}

// The names of every value but the unspecified one, "a, b or c".
std::string Names(const pb::EnumDescriptor* type, const std::string& prefix) {
  std::vector<std::string> names;
  for (int i = 0; i < type->value_count(); ++i) {
    if (type->value(i)->number() != 0) names.push_back(ValueName(type, type->value(i)->number(), prefix));
  }
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    absl::StrAppend(&out, i == 0 ? "" : (i + 1 == names.size() ? " or " : ", "), names[i]);
  }
  return out;
}

absl::StatusOr<int> Parse(const pb::EnumDescriptor* type, const std::string& prefix, const std::string& what,
                          const std::string& name) {
  const std::string upper = absl::StrCat(prefix, absl::AsciiStrToUpper(name));
  const pb::EnumValueDescriptor* value = type->FindValueByName(upper);
  if (name.empty() || name != absl::AsciiStrToLower(name) || value == nullptr || value->number() == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown ", what, " '", name, "' (expected ", Names(type, prefix), ")"));
  }
  return value->number();
}

}  // namespace

std::string SamplerName(v1::Sampler sampler) { return ValueName(v1::Sampler_descriptor(), sampler, "SAMPLER_"); }
std::string ScheduleName(v1::Schedule schedule) {
  return ValueName(v1::Schedule_descriptor(), schedule, "SCHEDULE_");
}
std::string SamplerNames() { return Names(v1::Sampler_descriptor(), "SAMPLER_"); }
std::string ScheduleNames() { return Names(v1::Schedule_descriptor(), "SCHEDULE_"); }

std::string A1111SamplerName(v1::Sampler sampler) {
  switch (sampler) {
    case v1::SAMPLER_EULER: return "Euler";
    case v1::SAMPLER_EULER_ANCESTRAL: return "Euler a";
    case v1::SAMPLER_DPMPP_2M: return "DPM++ 2M";
    case v1::SAMPLER_LCM: return "LCM";
    case v1::SAMPLER_TCD: return "TCD";
    default: return SamplerName(sampler);
  }
}

absl::StatusOr<v1::Sampler> ParseSampler(const std::string& name) {
  ASSIGN_OR_RETURN(auto v, Parse(v1::Sampler_descriptor(), "SAMPLER_", "sampler", name));
  return static_cast<v1::Sampler>(v);
}

absl::StatusOr<v1::Schedule> ParseSchedule(const std::string& name) {
  ASSIGN_OR_RETURN(auto v, Parse(v1::Schedule_descriptor(), "SCHEDULE_", "schedule", name));
  return static_cast<v1::Schedule>(v);
}

absl::Status CheckSamplerSchedule(v1::Sampler sampler, v1::Schedule schedule) {
  const bool own_timesteps = sampler == v1::SAMPLER_LCM || sampler == v1::SAMPLER_TCD;
  if (!own_timesteps || schedule == v1::SCHEDULE_NORMAL) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("sampler ", SamplerName(sampler),
                                                 " uses its own timesteps: the schedule must be normal, got ",
                                                 ScheduleName(schedule)));
}

std::string BatchKeyOf(const std::string& model, const v1::SamplingParams& sampling, const v1::ImageParams& image) {
  // Deterministic serialization: equal messages give equal bytes.
  std::string bytes;
  {
    pb::io::StringOutputStream stream(&bytes);
    pb::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    sampling.SerializeToCodedStream(&coded);
  }
  return absl::StrCat(model, "\n", image.init_image_sha256().empty() ? "txt2img" : "img2img", "\n", bytes);
}

}  // namespace spriteforge
