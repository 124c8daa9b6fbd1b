#include "coordinator/transport/http/openai.h"

#include <algorithm>
#include <limits>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/manifest_builder.h"
#include "common/status_macros.h"
#include "coordinator/transport/http/request_fields.h"

namespace spriteforge::coordinator::http {
namespace {

absl::Status ParseSize(const std::string& size, int64_t* width, int64_t* height) {
  const size_t x = size.find('x');
  if (x == std::string::npos || !absl::SimpleAtoi(size.substr(0, x), width) ||
      !absl::SimpleAtoi(size.substr(x + 1), height)) {
    return absl::InvalidArgumentError(absl::StrCat("size: expected WIDTHxHEIGHT such as 1024x1024, got '", size, "'"));
  }
  return absl::OkStatus();
}

// The request as spriteforge's typed item: every value checked as a manifest's is.
absl::StatusOr<ManifestEntry> BuildEntry(const ImageGeneration& r, const ManifestLimits& limits) {
  EntryBuilder b(limits);
  RETURN_IF_ERROR(b.SetPrompt({"prompt"}, r.prompt));
  if (r.has_negative) RETURN_IF_ERROR(b.SetNegative({"negative_prompt"}, r.negative_prompt));
  RETURN_IF_ERROR(b.SetWidth({"size"}, r.width));
  RETURN_IF_ERROR(b.SetHeight({"size"}, r.height));
  RETURN_IF_ERROR(b.SetSteps({"steps"}, r.steps));
  RETURN_IF_ERROR(b.SetCfg({"cfg_scale"}, r.cfg_scale));
  RETURN_IF_ERROR(b.SetSampler({"sampler"}, r.sampler));
  RETURN_IF_ERROR(b.SetCount({"n"}, r.n));
  b.SetSeed(r.first_seed);
  return b.Build({""});
}

}  // namespace

absl::StatusOr<ImageGeneration> ParseImageGeneration(const nlohmann::json& body, const ManifestLimits& limits,
                                                     int max_images, const std::function<uint64_t()>& draw_seed) {
  static const char* const kKnown[] = {"prompt", "model", "n", "size", "response_format", "quality", "style",
                                       "user", "negative_prompt", "seed", "steps", "cfg_scale", "sampler"};
  for (const auto& [key, value] : body.items()) {
    if (std::find_if(std::begin(kKnown), std::end(kKnown), [&](const char* k) { return key == k; }) == std::end(kKnown)) {
      return absl::InvalidArgumentError(absl::StrCat("unrecognized request argument: ", key));
    }
  }
  ImageGeneration r;
  if (!body.contains("prompt") || body["prompt"].is_null()) return absl::InvalidArgumentError("prompt: is required");
  RETURN_IF_ERROR(ReadString(body, "prompt", &r.prompt));
  RETURN_IF_ERROR(ReadString(body, "model", &r.model));
  RETURN_IF_ERROR(ReadInt(body, "n", 1, max_images, &r.n));
  std::string size;
  RETURN_IF_ERROR(ReadString(body, "size", &size));
  if (!size.empty()) {
    RETURN_IF_ERROR(ParseSize(size, &r.width, &r.height));
  }
  RETURN_IF_ERROR(ReadString(body, "response_format", &r.response_format));
  if (r.response_format != "b64_json" && r.response_format != "url") {
    return absl::InvalidArgumentError(absl::StrCat("response_format: expected b64_json or url, got '", r.response_format, "'"));
  }
  for (const char* ignored : {"quality", "style", "user"}) {
    std::string unused;
    RETURN_IF_ERROR(ReadString(body, ignored, &unused));
  }
  r.has_negative = body.contains("negative_prompt") && !body["negative_prompt"].is_null();
  RETURN_IF_ERROR(ReadString(body, "negative_prompt", &r.negative_prompt));
  RETURN_IF_ERROR(ReadInt(body, "seed", -1, std::numeric_limits<int64_t>::max(), &r.seed));
  // Ranges of image settings are the builder's (BuildEntry); these reads take any number.
  constexpr int64_t kAnyInt = std::numeric_limits<int64_t>::max();
  constexpr double kAny = std::numeric_limits<double>::max();
  RETURN_IF_ERROR(ReadInt(body, "steps", -kAnyInt, kAnyInt, &r.steps));
  RETURN_IF_ERROR(ReadNumber(body, "cfg_scale", -kAny, kAny, &r.cfg_scale));
  RETURN_IF_ERROR(ReadString(body, "sampler", &r.sampler));
  r.first_seed = r.seed >= 0 ? static_cast<uint64_t>(r.seed) : draw_seed();
  ASSIGN_OR_RETURN(r.entry, BuildEntry(r, limits));
  return r;
}

absl::StatusOr<Manifest> ImageGenerationManifest(const ImageGeneration& r, const std::string& model,
                                                 const ManifestLimits& limits) {
  ManifestBuilder m(limits);
  RETURN_IF_ERROR(m.SetName({"name"}, "images-generations"));
  RETURN_IF_ERROR(m.SetModel({"model"}, model));
  RETURN_IF_ERROR(m.AddEntry({"n"}, r.entry));
  return m.Build();
}

}  // namespace spriteforge::coordinator::http
