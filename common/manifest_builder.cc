#include "common/manifest_builder.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/manifest_files.h"
#include "common/sampling.h"
#include "common/sprite/spec.h"
#include "common/status_macros.h"
#include "common/text.h"

namespace spriteforge {
namespace {

// Prompts are limited in characters (not bytes); line breaks and tabs are fine in them.
std::string PromptProblem(const std::string& text, const ManifestLimits& lim) {
  return TextProblem(text, lim.max_prompt_chars, "\t\n\r");
}

// Model references: a value with a '/' or ending in .safetensors is a path (uploaded with
// the job), anything else a name in the workers' folders.
bool IsModelPath(const std::string& value) {
  return value.find('/') != std::string::npos || absl::EndsWith(value, ".safetensors");
}

// The name a model path goes by in messages and sidecars: its folder's or file's stem.
std::string ModelPathName(const std::string& path) {
  std::string trimmed = path;
  while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
  return std::filesystem::path(trimmed).stem().string();
}

std::string ModelNameProblem(const std::string& name, const char* folder_flag) {
  if (IsSafeName(name)) return "";
  return absl::StrCat("must be a name in the workers' ", folder_flag,
                      " (A-Z a-z 0-9 . _ -) or a path (with a '/', or a .safetensors file)");
}

constexpr char kUploadOnly[] = "files given by path must be uploaded: submit the manifest with the spriteforge client";

}  // namespace

absl::Status FieldErrors::At(const FieldRef& field, const std::string& problem) const {
  return AtLine(field.line, absl::StrCat(field.path, ": ", problem));
}

absl::Status FieldErrors::AtLine(int line, const std::string& message) const {
  if (origin_.empty()) return absl::InvalidArgumentError(message);
  return absl::InvalidArgumentError(absl::StrCat(origin_, line > 0 ? absl::StrCat(":", line) : "", ": ", message));
}

// ------------------------------------------------------------------ EntryBuilder

EntryBuilder::EntryBuilder(const ManifestLimits& limits, FileResolver files, std::string origin)
    : limits_(limits), files_(std::move(files)), err_(std::move(origin)) {
  sampling_.set_width(1024);
  sampling_.set_height(1024);
  sampling_.set_steps(30);
  sampling_.set_cfg(5.0);
  sampling_.set_sampler(v1::SAMPLER_EULER);
  sampling_.set_schedule(v1::SCHEDULE_NORMAL);
}

absl::Status EntryBuilder::Fail(const FieldRef& at, const std::string& problem) {
  absl::Status s = err_.At(at, problem);
  if (first_error_.ok()) first_error_ = s;
  return s;
}

absl::StatusOr<ManifestFile> EntryBuilder::Resolve(const FieldRef& at, const std::string& path,
                                                   ManifestFileKind kind) {
  if (path.empty()) return Fail(at, "must not be empty");
  if (!files_) return Fail(at, kUploadOnly);
  auto file = files_(path, kind);
  if (!file.ok()) return Fail(at, std::string(file.status().message()));
  return file;
}

absl::Status EntryBuilder::SetPrompt(const FieldRef& at, const std::string& prompt) {
  if (auto problem = PromptProblem(prompt, limits_); !problem.empty()) return Fail(at, problem);
  image_.set_prompt(prompt);
  return absl::OkStatus();
}

absl::Status EntryBuilder::SetNegative(const FieldRef& at, const std::string& negative) {
  if (auto problem = PromptProblem(negative, limits_); !problem.empty()) return Fail(at, problem);
  image_.set_negative(negative);
  return absl::OkStatus();
}

absl::Status EntryBuilder::SetName(const FieldRef& at, const std::string& name) {
  if (!IsSafeName(name)) return Fail(at, "must be 1..128 characters of A-Z a-z 0-9 . _ -");
  image_.set_name(name);
  return absl::OkStatus();
}

absl::Status EntryBuilder::SetWidth(const FieldRef& at, int64_t width) {
  if (width < limits_.min_size || width > limits_.max_size || width % 8 != 0) {
    return Fail(at, absl::StrCat("must be a multiple of 8 in ", limits_.min_size, "..", limits_.max_size));
  }
  sampling_.set_width(static_cast<int>(width));
  return absl::OkStatus();
}

absl::Status EntryBuilder::SetHeight(const FieldRef& at, int64_t height) {
  if (height < limits_.min_size || height > limits_.max_size || height % 8 != 0) {
    return Fail(at, absl::StrCat("must be a multiple of 8 in ", limits_.min_size, "..", limits_.max_size));
  }
  sampling_.set_height(static_cast<int>(height));
  return absl::OkStatus();
}

absl::Status EntryBuilder::SetSteps(const FieldRef& at, int64_t steps) {
  if (steps < 1 || steps > limits_.max_steps) return Fail(at, absl::StrCat("must be 1..", limits_.max_steps));
  sampling_.set_steps(static_cast<int>(steps));
  return absl::OkStatus();
}

absl::Status EntryBuilder::SetCfg(const FieldRef& at, double cfg) {
  if (!(cfg >= 0 && cfg <= limits_.max_cfg)) return Fail(at, absl::StrCat("must be 0..", limits_.max_cfg));
  sampling_.set_cfg(cfg);
  return absl::OkStatus();
}

absl::Status EntryBuilder::SetSampler(const FieldRef& at, const std::string& name) {
  auto sampler = ParseSampler(name);
  if (!sampler.ok()) return Fail(at, absl::StrCat("must be ", SamplerNames()));
  sampling_.set_sampler(*sampler);
  return absl::OkStatus();
}

absl::Status EntryBuilder::SetSchedule(const FieldRef& at, const std::string& name) {
  auto schedule = ParseSchedule(name);
  if (!schedule.ok()) return Fail(at, absl::StrCat("must be ", ScheduleNames()));
  sampling_.set_schedule(*schedule);
  return absl::OkStatus();
}

void EntryBuilder::SetTileable(bool tileable) { sampling_.set_tileable(tileable); }

absl::Status EntryBuilder::SetTcdGamma(const FieldRef& at, double gamma) {
  if (!(gamma >= 0 && gamma <= 1)) return Fail(at, "must be 0..1");
  tcd_gamma_ = gamma;
  return absl::OkStatus();
}

absl::Status EntryBuilder::SetGuidanceInterval(const FieldRef& start_at, double start, const FieldRef& end_at,
                                              double end) {
  if (!(start >= 0 && start <= 1)) return Fail(start_at, "must be 0..1 (a share of the steps)");
  if (!(end >= 0 && end <= 1)) return Fail(end_at, "must be 0..1 (a share of the steps)");
  if (!(start < end)) return Fail(start_at, absl::StrCat("must be below end (", start, " >= ", end, "): no step would be guided"));
  sampling_.mutable_guidance_interval()->set_start(start);
  sampling_.mutable_guidance_interval()->set_end(end);
  return absl::OkStatus();
}

absl::Status EntryBuilder::SetDeepCache(const FieldRef& at, int64_t every) {
  if (every != 0 && (every < 2 || every > 10)) return Fail(at, "must be 2..10 (a full UNet pass every N steps), or 0 for off");
  sampling_.set_deep_cache(static_cast<int32_t>(every));
  return absl::OkStatus();
}

absl::Status EntryBuilder::SetCount(const FieldRef& at, int64_t count) {
  if (count < 1 || count > limits_.max_count_per_item) {
    return Fail(at, absl::StrCat("must be 1..", limits_.max_count_per_item));
  }
  count_ = static_cast<int>(count);
  return absl::OkStatus();
}

absl::Status EntryBuilder::SetInitImage(const FieldRef& at, const std::string& path) {
  ASSIGN_OR_RETURN(auto file, Resolve(at, path, ManifestFileKind::kImage));
  image_.set_init_image_sha256(file.sha256);
  init_image_ = Picture{at, file.width, file.height};
  return absl::OkStatus();
}

absl::Status EntryBuilder::SetStrength(const FieldRef& at, double strength) {
  if (!(strength > 0 && strength <= 1)) return Fail(at, "must be in (0, 1]");
  strength_ = strength;
  strength_at_ = at;
  return absl::OkStatus();
}

// ---- LoRAs

absl::Status EntryBuilder::ClearLoras(const FieldRef& list, size_t count) {
  if (count > limits_.max_loras) return Fail(list, absl::StrCat("holds more than ", limits_.max_loras, " LoRAs"));
  sampling_.clear_loras();
  return absl::OkStatus();
}

absl::Status EntryBuilder::AddLoraByName(const FieldRef& at, const std::string& name) {
  const std::string stem = LoraStem(name);
  if (!IsSafeName(stem)) return Fail(at, "must be a file name of the workers' LoRA folder: A-Z a-z 0-9 . _ -, no folders");
  if (sampling_.loras_size() >= static_cast<int>(limits_.max_loras)) {
    return Fail(at, absl::StrCat("is one more than ", limits_.max_loras, " LoRAs"));
  }
  v1::LoraRef* lora = sampling_.add_loras();
  lora->set_name(stem);
  lora->set_strength(1.0);
  return absl::OkStatus();
}

absl::Status EntryBuilder::AddLoraByPath(const FieldRef& at, const std::string& path) {
  if (sampling_.loras_size() >= static_cast<int>(limits_.max_loras)) {
    return Fail(at, absl::StrCat("is one more than ", limits_.max_loras, " LoRAs"));
  }
  ASSIGN_OR_RETURN(auto file, Resolve(at, path, ManifestFileKind::kLora));
  v1::LoraRef* lora = sampling_.add_loras();
  lora->set_name(std::filesystem::path(path).stem().string());
  lora->set_sha256(file.sha256);
  lora->set_strength(1.0);
  return absl::OkStatus();
}

absl::Status EntryBuilder::SetLoraStrength(const FieldRef& at, double strength) {
  if (sampling_.loras_size() == 0) return Fail(at, "needs a LoRA");
  if (!(std::isfinite(strength) && std::abs(strength) <= 10)) return Fail(at, "must be -10..10");
  sampling_.mutable_loras()->rbegin()->set_strength(strength);
  return absl::OkStatus();
}

// ---- ControlNets

absl::Status EntryBuilder::ClearControls(const FieldRef& list, size_t count) {
  if (count > limits_.max_controls) return Fail(list, absl::StrCat("holds more than ", limits_.max_controls, " ControlNets"));
  sampling_.clear_controlnets();
  image_.clear_controls();
  control_pictures_.clear();
  controls_at_.clear();
  pictures_per_control_.clear();
  return absl::OkStatus();
}

absl::Status EntryBuilder::AddControlNet(const FieldRef& control_at, const FieldRef& model_at,
                                         const std::string& model) {
  if (sampling_.controlnets_size() >= static_cast<int>(limits_.max_controls)) {
    return Fail(control_at, absl::StrCat("is one more than ", limits_.max_controls, " ControlNets"));
  }
  v1::ControlNetRef net;
  if (IsModelPath(model)) {
    // A diffusers model given by path: a folder (its weights and config.json in it) or the
    // .safetensors file itself with config.json beside it.
    std::string dir = model;
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    std::string weights = absl::StrCat(dir, "/diffusion_pytorch_model.safetensors");
    if (absl::EndsWith(dir, ".safetensors")) {
      weights = dir;
      const std::string parent = std::filesystem::path(dir).parent_path().string();
      dir = parent.empty() ? "." : parent;
    }
    ASSIGN_OR_RETURN(auto w, Resolve(model_at, weights, ManifestFileKind::kWeights));
    ASSIGN_OR_RETURN(auto c, Resolve(model_at, dir + "/config.json", ManifestFileKind::kConfig));
    net.set_name(ModelPathName(model));
    net.set_sha256(w.sha256);
    net.set_config_sha256(c.sha256);
  } else {
    if (auto problem = ModelNameProblem(model, "--controlnet-dir"); !problem.empty()) return Fail(model_at, problem);
    net.set_name(model);
  }
  net.set_scale(1.0);
  net.set_start(0.0);
  net.set_end(1.0);
  *sampling_.add_controlnets() = std::move(net);
  image_.add_controls();
  controls_at_.push_back(control_at);
  pictures_per_control_.push_back(0);
  return absl::OkStatus();
}

absl::Status EntryBuilder::SetScale(const FieldRef& at, double scale, double* out) {
  if (!(std::isfinite(scale) && scale >= 0 && scale <= 5)) return Fail(at, "must be 0..5");
  *out = scale;
  return absl::OkStatus();
}

absl::Status EntryBuilder::SetControlScale(const FieldRef& at, double scale) {
  if (sampling_.controlnets_size() == 0) return Fail(at, "needs a ControlNet model");
  double value = 0;
  RETURN_IF_ERROR(SetScale(at, scale, &value));
  sampling_.mutable_controlnets()->rbegin()->set_scale(value);
  return absl::OkStatus();
}

absl::Status EntryBuilder::SetControlSpan(const FieldRef& start_at, double start, const FieldRef& end_at,
                                          double end) {
  if (sampling_.controlnets_size() == 0) return Fail(start_at, "needs a ControlNet model");
  if (!(start >= 0 && start <= 1)) return Fail(start_at, "must be 0..1 (a share of the steps)");
  if (!(end >= 0 && end <= 1)) return Fail(end_at, "must be 0..1 (a share of the steps)");
  if (!(start < end)) {
    return Fail(start_at, absl::StrCat("must be below end (", start, " >= ", end, "): the ControlNet would act on no step"));
  }
  v1::ControlNetRef& net = *sampling_.mutable_controlnets()->rbegin();
  net.set_start(start);
  net.set_end(end);
  return absl::OkStatus();
}

absl::Status EntryBuilder::SetControlGuessMode(const FieldRef& at, bool on) {
  if (sampling_.controlnets_size() == 0) return Fail(at, "needs a ControlNet model");
  sampling_.mutable_controlnets()->rbegin()->set_guess_mode(on);
  return absl::OkStatus();
}

// Counts the last ControlNet's pictures: it takes exactly one.
absl::Status EntryBuilder::AddPicture(const FieldRef& at) {
  if (controls_at_.empty()) return Fail(at, "needs a ControlNet model");
  if (pictures_per_control_.back()++ > 0) {
    return Fail(controls_at_.back(), "needs exactly one of image (a PNG), pose (a pose name or .json file) or canny");
  }
  return absl::OkStatus();
}

absl::Status EntryBuilder::SetControlImage(const FieldRef& at, const std::string& path) {
  RETURN_IF_ERROR(AddPicture(at));
  ASSIGN_OR_RETURN(auto file, Resolve(at, path, ManifestFileKind::kImage));
  image_.mutable_controls()->rbegin()->set_image_sha256(file.sha256);
  control_pictures_.push_back({at, file.width, file.height});
  return absl::OkStatus();
}

absl::Status EntryBuilder::SetControlPose(const FieldRef& at, const std::string& pose) {
  RETURN_IF_ERROR(AddPicture(at));
  v1::ControlImage& picture = *image_.mutable_controls()->rbegin();
  if (absl::EndsWith(pose, ".json")) {
    ASSIGN_OR_RETURN(auto file, Resolve(at, pose, ManifestFileKind::kConfig));
    picture.set_pose_sha256(file.sha256);
    return absl::OkStatus();
  }
  const std::string qualified = QualifiedPoseName(pose);
  if (qualified.empty()) {
    return Fail(at, absl::StrCat("unknown pose '", pose, "' (built-in sets: ", PoseSetNames(), "; or a .json file)"));
  }
  picture.set_pose(qualified);
  return absl::OkStatus();
}

absl::Status EntryBuilder::SetControlCanny(const FieldRef& image_at, const std::string& path,
                                           const FieldRef& thresholds_at, int low, int high) {
  RETURN_IF_ERROR(AddPicture(image_at));
  ASSIGN_OR_RETURN(auto file, Resolve(image_at, path, ManifestFileKind::kImage));
  if (!(low >= 0 && low <= high && high <= 1020)) {
    return Fail(thresholds_at, absl::StrCat("needs 0 <= low <= high <= 1020, got low ", low, ", high ", high));
  }
  auto* canny = image_.mutable_controls()->rbegin()->mutable_canny();
  canny->set_image_sha256(file.sha256);
  canny->set_low(low);
  canny->set_high(high);
  control_pictures_.push_back({image_at, file.width, file.height});
  return absl::OkStatus();
}

// ---- IP-Adapter

absl::Status EntryBuilder::ClearReferenceImages(const FieldRef& list, size_t count) {
  if (count == 0) return Fail(list, "must be a non-empty list of PNG files");
  if (count > limits_.max_reference_images) {
    return Fail(list, absl::StrCat("holds more than ", limits_.max_reference_images, " images"));
  }
  image_.clear_reference_sha256();
  return absl::OkStatus();
}

absl::Status EntryBuilder::AddReferenceImage(const FieldRef& at, const std::string& path) {
  if (image_.reference_sha256_size() >= static_cast<int>(limits_.max_reference_images)) {
    return Fail(at, absl::StrCat("is one more than ", limits_.max_reference_images, " images"));
  }
  ASSIGN_OR_RETURN(auto file, Resolve(at, path, ManifestFileKind::kImage));
  image_.add_reference_sha256(file.sha256);
  return absl::OkStatus();
}

absl::Status EntryBuilder::SetIpAdapter(const FieldRef& adapter_at, const std::string& adapter,
                                        const FieldRef& encoder_at, const std::string& given_encoder) {
  v1::IpAdapterRef ip;
  const bool uploaded = IsModelPath(adapter);
  if (uploaded) {
    ASSIGN_OR_RETURN(auto file, Resolve(adapter_at, adapter, ManifestFileKind::kWeights));
    ip.set_name(ModelPathName(adapter));
    ip.set_sha256(file.sha256);
  } else {
    if (auto problem = ModelNameProblem(adapter, "--ip-adapter-dir"); !problem.empty()) return Fail(adapter_at, problem);
    ip.set_name(LoraStem(adapter));
  }
  std::string encoder = given_encoder;
  if (encoder.empty() && uploaded) {
    const std::string parent = std::filesystem::path(adapter).parent_path().string();
    encoder = (parent.empty() ? "." : parent) + "/image_encoder";
  }
  if (IsModelPath(encoder)) {
    std::string dir = encoder;
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    std::string weights = absl::StrCat(dir, "/model.safetensors");
    if (absl::EndsWith(dir, ".safetensors")) {
      weights = dir;
      const std::string parent = std::filesystem::path(dir).parent_path().string();
      dir = parent.empty() ? "." : parent;
    }
    ASSIGN_OR_RETURN(auto w, Resolve(encoder_at, weights, ManifestFileKind::kWeights));
    ASSIGN_OR_RETURN(auto c, Resolve(encoder_at, dir + "/config.json", ManifestFileKind::kConfig));
    ip.set_encoder(ModelPathName(encoder));
    ip.set_encoder_sha256(w.sha256);
    ip.set_encoder_config_sha256(c.sha256);
  } else if (!encoder.empty()) {
    if (auto problem = ModelNameProblem(encoder, "--ip-adapter-dir"); !problem.empty()) return Fail(encoder_at, problem);
    ip.set_encoder(encoder);
  }
  ip.set_scale(1.0);
  *sampling_.mutable_ip_adapter() = std::move(ip);
  return absl::OkStatus();
}

absl::Status EntryBuilder::SetIpAdapterScale(const FieldRef& at, double scale) {
  if (!sampling_.has_ip_adapter()) return Fail(at, "needs an adapter");
  double value = 0;
  RETURN_IF_ERROR(SetScale(at, scale, &value));
  sampling_.mutable_ip_adapter()->set_scale(value);
  return absl::OkStatus();
}

void EntryBuilder::ClearIpAdapter() {
  sampling_.clear_ip_adapter();
  image_.clear_reference_sha256();
  reference_from_ = -1;
}

void EntryBuilder::SetReferenceFromImage(int first_index) {
  image_.clear_reference_sha256();
  reference_from_ = first_index;
}

void EntryBuilder::PrependControl(const v1::ControlNetRef& net, const v1::ControlImage& picture) {
  controls_at_.insert(controls_at_.begin(), FieldRef{});
  pictures_per_control_.insert(pictures_per_control_.begin(), 1);
  sampling_.mutable_controlnets()->Add(v1::ControlNetRef(net));
  std::rotate(sampling_.mutable_controlnets()->rbegin(), sampling_.mutable_controlnets()->rbegin() + 1,
              sampling_.mutable_controlnets()->rend());
  image_.mutable_controls()->Add(v1::ControlImage(picture));
  std::rotate(image_.mutable_controls()->rbegin(), image_.mutable_controls()->rbegin() + 1,
              image_.mutable_controls()->rend());
}

// ---- the whole entry

absl::StatusOr<ManifestEntry> EntryBuilder::Build(const FieldRef& item) const {
  RETURN_IF_ERROR(first_error_);
  v1::SamplingParams s = sampling_;
  if (absl::Status pair = CheckSamplerSchedule(s.sampler(), s.schedule()); !pair.ok()) {
    return err_.At({item.path + (item.path.empty() ? "" : ".") + "schedule", item.line}, std::string(pair.message()));
  }
  for (size_t i = 0; i < pictures_per_control_.size(); ++i) {
    if (pictures_per_control_[i] == 0) {
      return err_.At(controls_at_[i], "needs exactly one of image (a PNG), pose (a pose name or .json file) or canny");
    }
  }
  if (s.sampler() == v1::SAMPLER_TCD) s.set_tcd_gamma(tcd_gamma_);
  // An interval over every step, or without CFG, guides as none does: the same batches.
  const auto& span = s.guidance_interval();
  if (s.cfg() <= 1 || (span.start() == 0 && span.end() == 1)) s.clear_guidance_interval();
  if (s.deep_cache() > 0 && s.controlnets_size() > 0) {
    return err_.At({item.path + (item.path.empty() ? "" : ".") + "deep_cache", item.line},
                   "cannot be combined with controls (their residuals feed every UNet level)");
  }
  for (const Picture& c : control_pictures_) {
    // As the worker resizes control images (control/resize.h): the item's aspect ratio, to
    // within whole-pixel rounding.
    const bool fits = std::llround(static_cast<double>(c.width) * s.height() / s.width()) == c.height ||
                      std::llround(static_cast<double>(c.height) * s.width() / s.height()) == c.width;
    if (!fits) {
      return err_.At(c.at, absl::StrCat("is ", c.width, "x", c.height, ", not the item's aspect ratio (", s.width(), "x",
                                        s.height(), "): crop it or set width and height to match"));
    }
  }
  if (!init_image_) {
    if (strength_at_) return err_.At(*strength_at_, "needs init_image (img2img)");
  } else {
    if (init_image_->width != s.width() || init_image_->height != s.height()) {
      return err_.At(init_image_->at, absl::StrCat("is ", init_image_->width, "x", init_image_->height, " but the item is ",
                                                   s.width(), "x", s.height(), " (set width and height to the image's size)"));
    }
    s.set_strength(strength_.value_or(0.75));  // A1111's img2img default
  }
  if (reference_from_ >= 0 && !s.has_ip_adapter()) {
    return err_.At({item.path + (item.path.empty() ? "" : ".") + "reference", item.line},
                   "takes the first image as the reference: needs an adapter");
  }
  ManifestEntry entry;
  entry.image = image_;
  entry.sampling = std::move(s);
  entry.count = count_;
  entry.seed = seed_;
  entry.reference_from = reference_from_;
  return entry;
}

// ------------------------------------------------------------------ ManifestBuilder

ManifestBuilder::ManifestBuilder(const ManifestLimits& limits, std::string origin)
    : limits_(limits), err_(std::move(origin)) {}

absl::Status ManifestBuilder::Fail(const FieldRef& at, const std::string& problem) {
  absl::Status s = err_.At(at, problem);
  if (first_error_.ok()) first_error_ = s;
  return s;
}

absl::Status ManifestBuilder::SetName(const FieldRef& at, const std::string& name) {
  if (name.empty()) return Fail(at, "must not be empty");
  if (auto problem = TextProblem(name, limits_.max_name_chars); !problem.empty()) return Fail(at, problem);
  manifest_.name = name;
  return absl::OkStatus();
}

absl::Status ManifestBuilder::SetModel(const FieldRef& at, const std::string& model) {
  if (model.empty()) return Fail(at, "must not be empty");
  if (auto problem = ModelNameProblem(model); !problem.empty()) return Fail(at, problem);
  manifest_.model = model;
  return absl::OkStatus();
}

absl::Status ManifestBuilder::SetPreviewEvery(const FieldRef& at, int64_t steps) {
  if (steps < 0 || steps > limits_.max_steps) {
    return Fail(at, absl::StrCat("must be 0 (no previews) to ", limits_.max_steps, " steps, got ", steps));
  }
  manifest_.preview_every = static_cast<int>(steps);
  return absl::OkStatus();
}

absl::Status ManifestBuilder::SetPostprocess(const FieldRef& at, const nlohmann::json& section,
                                             const std::function<int(const std::string& key)>& line_of) {
  if (!section.is_object()) return Fail(at, "must be a mapping");
  if (const size_t bytes = section.dump().size(); bytes > limits_.max_postprocess_bytes) {
    return Fail(at, absl::StrCat("is ", bytes, " bytes as JSON; the limit is ", limits_.max_postprocess_bytes));
  }
  std::string bad_key;
  auto spec = postprocess::ParsePostprocessSpec(section, &bad_key);
  if (!spec.ok()) {
    // The message names the field ("postprocess.palette: ..."); the line is its key's.
    const int line = !bad_key.empty() && line_of ? line_of(bad_key) : at.line;
    absl::Status s = err_.AtLine(line > 0 ? line : at.line, std::string(spec.status().message()));
    if (first_error_.ok()) first_error_ = s;
    return s;
  }
  manifest_.postprocess = std::move(*spec);
  return absl::OkStatus();
}

absl::Status ManifestBuilder::AddEntry(const FieldRef& item, const FieldRef& count_at, const EntryBuilder& builder) {
  RETURN_IF_ERROR(first_error_);
  auto entry = builder.Build(item);
  if (!entry.ok()) {
    first_error_ = entry.status();
    return first_error_;
  }
  return AddEntry(count_at, *std::move(entry));
}

absl::Status ManifestBuilder::AddEntry(const FieldRef& count_at, ManifestEntry entry) {
  RETURN_IF_ERROR(first_error_);
  if (manifest_.image_count + entry.count > limits_.max_images_per_job) {
    return Fail(count_at, absl::StrCat("the job would exceed ", limits_.max_images_per_job, " images"));
  }
  if (entry.reference_from >= 0 && entry.reference_from + entry.count > manifest_.image_count) {
    return Fail(count_at, "takes its reference from an image that does not come before it");
  }
  entry.first_index = static_cast<int>(manifest_.image_count);
  manifest_.image_count += entry.count;
  manifest_.entries.push_back(std::move(entry));
  return absl::OkStatus();
}

absl::StatusOr<Manifest> ManifestBuilder::Build() const {
  RETURN_IF_ERROR(first_error_);
  if (manifest_.name.empty()) return err_.At({"name"}, "is required");
  if (manifest_.model.empty()) return err_.At({"model"}, "is required");
  if (manifest_.entries.empty()) return err_.At({"items"}, "must be a non-empty list");
  return manifest_;
}

// ------------------------------------------------------------------ poses

// The built-in pose sets, read once (they ship with the programs and do not change).
const std::vector<std::pair<std::string, std::vector<control::NamedPose>>>& BuiltinPoses() {
  static const auto* sets = [] {
    auto* out = new std::vector<std::pair<std::string, std::vector<control::NamedPose>>>();
    for (const std::string& set : control::ListPoseSets()) {
      auto poses = control::LoadBuiltinPoseSet(set);
      if (poses.ok()) out->emplace_back(set, std::move(*poses));
    }
    return out;
  }();
  return *sets;
}

std::string QualifiedPoseName(const std::string& written) {
  const size_t slash = written.rfind('/');
  const std::string set = slash == std::string::npos ? "" : written.substr(0, slash);
  const std::string name = slash == std::string::npos ? written : written.substr(slash + 1);
  for (const auto& [set_name, poses] : BuiltinPoses()) {
    if (!set.empty() && set != set_name) continue;
    for (const control::NamedPose& pose : poses) {
      if (pose.name == name) return absl::StrCat(set_name, "/", name);
    }
  }
  return "";
}

std::string PoseSetNames() {
  std::string names;
  for (const auto& [set, poses] : BuiltinPoses()) absl::StrAppend(&names, names.empty() ? "" : ", ", set);
  return names.empty() ? "none installed" : names;
}

}  // namespace spriteforge
