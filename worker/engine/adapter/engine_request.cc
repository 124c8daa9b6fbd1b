#include "worker/engine/adapter/engine_request.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/png.h"
#include "common/sampling.h"
#include "common/sprite/control/canny.h"
#include "common/sprite/control/pose.h"
#include "common/sprite/control/pose_library.h"
#include "common/sprite/control/resize.h"
#include "common/status_macros.h"

namespace spriteforge::engine {

absl::StatusOr<SamplerKind> ToEngineSampler(v1::Sampler sampler) {
  switch (sampler) {
    case v1::SAMPLER_EULER: return SamplerKind::kEuler;
    case v1::SAMPLER_EULER_ANCESTRAL: return SamplerKind::kEulerAncestral;
    case v1::SAMPLER_DPMPP_2M: return SamplerKind::kDpmpp2m;
    case v1::SAMPLER_LCM: return SamplerKind::kLcm;
    case v1::SAMPLER_TCD: return SamplerKind::kTcd;
    default: break;
  }
  return absl::InvalidArgumentError(absl::StrCat("sampler value ", static_cast<int>(sampler),
                                                 " is none the engine runs (expected ", SamplerNames(), ")"));
}

absl::StatusOr<ScheduleKind> ToEngineSchedule(v1::Schedule schedule) {
  switch (schedule) {
    case v1::SCHEDULE_NORMAL: return ScheduleKind::kNormal;
    case v1::SCHEDULE_TRAILING: return ScheduleKind::kTrailing;
    case v1::SCHEDULE_SGM_UNIFORM: return ScheduleKind::kSgmUniform;
    case v1::SCHEDULE_KARRAS: return ScheduleKind::kKarras;
    default: break;
  }
  return absl::InvalidArgumentError(absl::StrCat("schedule value ", static_cast<int>(schedule),
                                                 " is none the engine runs (expected ", ScheduleNames(), ")"));
}

absl::StatusOr<BatchRequest> ToEngineRequest(const v1::SamplingParams& s, const std::vector<std::string>& lora_paths,
                                             const ConditioningFiles& conditioning) {
  if (conditioning.controlnets.size() != static_cast<size_t>(s.controlnets_size())) {
    return absl::InternalError(absl::StrCat(conditioning.controlnets.size(), " ControlNet files for ",
                                            s.controlnets_size(), " ControlNets"));
  }
  if (lora_paths.size() != static_cast<size_t>(s.loras_size())) {
    return absl::InternalError(absl::StrCat(lora_paths.size(), " LoRA files for ", s.loras_size(), " LoRAs"));
  }
  ASSIGN_OR_RETURN(auto sampler, ToEngineSampler(s.sampler()));
  ASSIGN_OR_RETURN(auto schedule, ToEngineSchedule(s.schedule()));
  BatchRequest request;
  request.width = s.width();
  request.height = s.height();
  request.steps = s.steps();
  request.float_pixels = false;  // the worker writes 8-bit PNGs
  request.cfg = s.cfg();
  request.sampler = sampler;
  request.schedule = schedule;
  request.tileable = s.tileable();
  request.tcd_gamma = s.tcd_gamma();
  if (s.strength() > 0) request.strength = s.strength();  // 0: txt2img, where it does not apply
  if (s.has_guidance_interval()) {
    request.guidance_start = s.guidance_interval().start();
    request.guidance_end = s.guidance_interval().end();
  }
  request.deep_cache = s.deep_cache();
  for (int i = 0; i < s.loras_size(); ++i) request.loras.push_back({lora_paths[i], s.loras(i).strength()});
  for (int i = 0; i < s.controlnets_size(); ++i) {
    const v1::ControlNetRef& net = s.controlnets(i);
    request.controlnets.push_back({conditioning.controlnets[i], net.scale(), net.start(), net.end(), net.guess_mode()});
  }
  if (s.has_ip_adapter()) {
    request.ip_adapter = IpAdapterSpec{conditioning.ip_adapter, conditioning.encoder_dir, s.ip_adapter().scale()};
  }
  return request;
}

namespace {

absl::StatusOr<RasterImage> ReadUploadedPng(const std::string& sha256, const BlobPath& blob_path) {
  ASSIGN_OR_RETURN(auto path, blob_path(sha256));
  auto png = ReadPngFile(path);
  if (!png.ok()) return absl::InvalidArgumentError(absl::StrCat("uploaded file ", sha256, " is not a readable PNG"));
  return png;
}

RgbImage ToRgb(RasterImage image) { return RgbImage{image.width, image.height, std::move(image.pixels)}; }

// "builtin:walk-8dir/walk_s_0": the pose `walk_s_0` of that set.
absl::StatusOr<control::BodyPose> BuiltinPose(const std::string& qualified) {
  const size_t slash = qualified.rfind('/');
  if (slash == std::string::npos) return absl::InvalidArgumentError(absl::StrCat("pose '", qualified, "' names no set"));
  ASSIGN_OR_RETURN(auto poses, control::LoadBuiltinPoseSet(qualified.substr(0, slash)));
  for (const control::NamedPose& pose : poses) {
    if (pose.name == qualified.substr(slash + 1)) return pose.keypoints;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown pose '", qualified, "'"));
}

absl::StatusOr<control::BodyPose> UploadedPose(const std::string& sha256, const BlobPath& blob_path) {
  ASSIGN_OR_RETURN(auto path, blob_path(sha256));
  ASSIGN_OR_RETURN(auto text, ReadFile(path));
  const nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return absl::InvalidArgumentError(absl::StrCat("pose file ", sha256, " is not JSON"));
  auto poses = control::ParsePoseSet(doc, "pose");
  if (!poses.ok()) return absl::InvalidArgumentError(absl::StrCat("pose file ", sha256, ": ", poses.status().message()));
  if (poses->empty()) return absl::InvalidArgumentError(absl::StrCat("pose file ", sha256, " holds no pose"));
  return poses->front().keypoints;
}

absl::StatusOr<RasterImage> ControlImageOf(const v1::ControlImage& c, int width, int height, const BlobPath& blob_path) {
  switch (c.source_case()) {
    case v1::ControlImage::kImageSha256: {
      ASSIGN_OR_RETURN(auto png, ReadUploadedPng(c.image_sha256(), blob_path));
      return control::ResizeControlImage(png, width, height);
    }
    case v1::ControlImage::kPose: {
      ASSIGN_OR_RETURN(auto pose, BuiltinPose(c.pose()));
      return control::DrawPose(pose, width, height);
    }
    case v1::ControlImage::kPoseSha256: {
      ASSIGN_OR_RETURN(auto pose, UploadedPose(c.pose_sha256(), blob_path));
      return control::DrawPose(pose, width, height);
    }
    case v1::ControlImage::kCanny: {
      ASSIGN_OR_RETURN(auto png, ReadUploadedPng(c.canny().image_sha256(), blob_path));
      // Edges at the render's size: resized first, so a line is one pixel wide there.
      ASSIGN_OR_RETURN(auto resized, control::ResizeControlImage(png, width, height));
      return control::CannyEdges(resized, static_cast<int>(c.canny().low()), static_cast<int>(c.canny().high()));
    }
    default:
      return absl::InvalidArgumentError("a control image names no source");
  }
}

}  // namespace

absl::StatusOr<std::vector<RgbImage>> ControlImagesOf(const v1::ImageParams& image, int width, int height,
                                                      const BlobPath& blob_path) {
  std::vector<RgbImage> out;
  for (const v1::ControlImage& c : image.controls()) {
    ASSIGN_OR_RETURN(auto raster, ControlImageOf(c, width, height, blob_path));
    if (raster.channels != 3) return absl::InternalError("a control image is not RGB");
    out.push_back(ToRgb(std::move(raster)));
  }
  return out;
}

absl::StatusOr<std::vector<RgbImage>> ReferenceImagesOf(const v1::ImageParams& image, const BlobPath& blob_path) {
  std::vector<RgbImage> out;
  for (const std::string& sha256 : image.reference_sha256()) {
    ASSIGN_OR_RETURN(auto png, ReadUploadedPng(sha256, blob_path));
    if (png.channels != 3) return absl::InvalidArgumentError(absl::StrCat("reference image ", sha256, " is not RGB"));
    out.push_back(ToRgb(std::move(png)));
  }
  return out;
}

ImageRequest ToEngineImage(const v1::ImageParams& image, std::optional<RgbImage> init_image) {
  ImageRequest out;
  out.prompt = image.prompt();
  if (image.has_negative()) out.negative = image.negative();
  out.seed = image.seed();
  out.init_image = std::move(init_image);
  return out;
}

}  // namespace spriteforge::engine
