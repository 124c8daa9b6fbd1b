#include "coordinator/transport/http/a1111.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <limits>
#include <regex>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/generation_info.h"
#include "common/manifest_builder.h"
#include "common/manifest_files.h"
#include "common/png.h"
#include "common/sampling.h"
#include "common/sprite/control/resize.h"
#include "common/status_macros.h"
#include "common/text.h"
#include "coordinator/transport/http/request_fields.h"

namespace spriteforge::coordinator::http {
namespace {

// The samplers A1111 offers that spriteforge has (named by A1111SamplerName), with A1111's
// k-diffusion alias and the schedule A1111's "Automatic" scheduler picks for each.
struct A1111Sampler {
  v1::Sampler sampler;
  const char* alias;
  v1::Schedule automatic;
};
constexpr A1111Sampler kSamplers[] = {
    {v1::SAMPLER_EULER, "k_euler", v1::SCHEDULE_NORMAL},
    {v1::SAMPLER_EULER_ANCESTRAL, "k_euler_a", v1::SCHEDULE_NORMAL},
    {v1::SAMPLER_DPMPP_2M, "k_dpmpp_2m", v1::SCHEDULE_KARRAS},
};

// Also accepts the older combined names ("DPM++ 2M Karras") and spriteforge's own.
absl::Status MapSampler(std::string name, const A1111Sampler** sampler, std::string* implied_schedule) {
  std::string lower = absl::AsciiStrToLower(name);
  if (lower.size() > 7 && lower.compare(lower.size() - 7, 7, " karras") == 0) {
    *implied_schedule = "karras";
    lower.resize(lower.size() - 7);
  }
  std::string available;
  for (const A1111Sampler& s : kSamplers) {
    if (lower == absl::AsciiStrToLower(A1111SamplerName(s.sampler)) || lower == s.alias || lower == SamplerName(s.sampler)) {
      *sampler = &s;
      return absl::OkStatus();
    }
    absl::StrAppend(&available, available.empty() ? "" : ", ", A1111SamplerName(s.sampler));
  }
  return absl::InvalidArgumentError(absl::StrCat("sampler_name: '", name, "' is not available (", available, ")"));
}

absl::Status MapScheduler(const std::string& name, const A1111Sampler& sampler, std::string* schedule) {
  const std::string lower = absl::AsciiStrToLower(name);
  if (lower == "automatic" || lower.empty()) *schedule = ScheduleName(sampler.automatic);
  else if (lower == "uniform" || lower == "normal") *schedule = ScheduleName(v1::SCHEDULE_NORMAL);
  else if (lower == "karras") *schedule = ScheduleName(v1::SCHEDULE_KARRAS);
  else if (lower == "sgm uniform" || lower == "sgm_uniform" || lower == "trailing") *schedule = ScheduleName(v1::SCHEDULE_TRAILING);
  else return absl::InvalidArgumentError(absl::StrCat("scheduler: '", name, "' is not available (Automatic, Uniform, Karras, SGM Uniform)"));
  return absl::OkStatus();
}

// The fields of A1111's txt2img and img2img request models, by what spriteforge does with
// them. Read: they make the job. Refused when set (RefuseUnsupported): they would change the
// image in a way spriteforge cannot. Ignored: they change nothing here (saving, grids) or
// tune what spriteforge does its own way (eta, s_*); a request lists those it sent in its
// info. Any other field is refused naming it: A1111 clients send only these.
enum class Route { kTxt2Img, kImg2Img };
const std::set<std::string>& ReadFields(Route route) {
  static const std::set<std::string> txt2img = {
      "prompt",     "negative_prompt",   "seed",             "steps",         "width",            "height",
      "cfg_scale",  "batch_size",        "n_iter",           "tiling",        "sampler_name",     "sampler_index",
      "scheduler",  "override_settings", "alwayson_scripts", "restore_faces", "subseed_strength", "script_name",
      "enable_hr"};
  static const std::set<std::string> img2img = [] {
    std::set<std::string> fields = txt2img;
    fields.erase("enable_hr");
    fields.insert({"init_images", "denoising_strength", "resize_mode", "mask"});
    return fields;
  }();
  return route == Route::kTxt2Img ? txt2img : img2img;
}

const std::set<std::string>& IgnoredFields(Route route) {
  static const std::vector<std::string> common = {
      "styles", "subseed", "seed_resize_from_h", "seed_resize_from_w", "do_not_save_samples", "do_not_save_grid",
      "eta", "s_min_uncond", "s_churn", "s_tmax", "s_tmin", "s_noise", "override_settings_restore_afterwards",
      "refiner_checkpoint", "refiner_switch_at", "disable_extra_networks", "comments", "script_args",
      "send_images", "save_images", "force_task_id", "infotext"};
  static const std::set<std::string> txt2img = [] {
    std::set<std::string> fields(common.begin(), common.end());
    // The hires fix's settings, which matter only with enable_hr (refused when set).
    fields.insert({"denoising_strength", "firstphase_width", "firstphase_height", "hr_scale", "hr_upscaler",
                   "hr_second_pass_steps", "hr_resize_x", "hr_resize_y", "hr_checkpoint_name", "hr_sampler_name",
                   "hr_scheduler", "hr_prompt", "hr_negative_prompt", "hr_additional_modules", "firstpass_image"});
    return fields;
  }();
  static const std::set<std::string> img2img = [] {
    std::set<std::string> fields(common.begin(), common.end());
    // Inpainting's settings, which matter only with a mask (refused when set).
    fields.insert({"image_cfg_scale", "mask_blur", "mask_blur_x", "mask_blur_y", "mask_round", "inpainting_fill",
                   "inpaint_full_res", "inpaint_full_res_padding", "inpainting_mask_invert",
                   "initial_noise_multiplier", "latent_mask", "include_init_images"});
    return fields;
  }();
  return route == Route::kTxt2Img ? txt2img : img2img;
}

// "promt: unknown field (did you mean prompt?)".
absl::Status UnknownField(const std::string& key, Route route) {
  if (route == Route::kTxt2Img && ReadFields(Route::kImg2Img).count(key)) {
    return absl::InvalidArgumentError(absl::StrCat(key, ": a field of /sdapi/v1/img2img, not of txt2img"));
  }
  std::string closest;
  size_t best = 3;  // at most two edits away
  for (const std::string& known : ReadFields(route)) {
    if (const size_t d = EditDistance(absl::AsciiStrToLower(key), known); d < best) best = d, closest = known;
  }
  return absl::InvalidArgumentError(
      absl::StrCat(key, ": unknown field", closest.empty() ? "" : absl::StrCat(" (did you mean ", closest, "?)")));
}

absl::Status CheckFieldNames(const nlohmann::json& body, Route route, std::vector<std::string>* ignored) {
  for (const auto& [key, value] : body.items()) {
    if (ReadFields(route).count(key)) continue;
    if (!IgnoredFields(route).count(key)) return UnknownField(key, route);
    if (!value.is_null()) ignored->push_back(key);
  }
  return absl::OkStatus();
}

// Set to anything but its default, each of these would change the image in A1111.
absl::Status RefuseUnsupported(const nlohmann::json& body) {
  auto set = [&](const char* key) {
    auto it = body.find(key);
    if (it == body.end() || it->is_null()) return false;
    if (it->is_boolean()) return it->get<bool>();
    if (it->is_number()) return it->get<double>() != 0;
    if (it->is_string() || it->is_array() || it->is_object()) return !it->empty();
    return true;
  };
  for (const char* key : {"enable_hr", "restore_faces", "subseed_strength", "script_name", "mask"}) {
    if (set(key)) return absl::InvalidArgumentError(absl::StrCat(key, ": not supported by spriteforge"));
  }
  return absl::OkStatus();
}

absl::Status Prefixed(const std::string& prefix, const absl::Status& s) {
  return s.ok() ? s : absl::Status(s.code(), absl::StrCat(prefix, s.message()));
}

// A base64 PNG, a data: URL too, as A1111 clients send images.
absl::Status DecodeBase64Png(std::string text, const std::string& field, std::string* png) {
  if (absl::StartsWith(text, "data:")) text = text.substr(text.find(',') + 1);
  static const std::string kPngSignature = "\x89PNG\r\n\x1a\n";
  if (!absl::Base64Unescape(text, png) || !absl::StartsWith(*png, kPngSignature)) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": expected a base64 PNG"));
  }
  return absl::OkStatus();
}

// A unit's image: base64 (a data: URL too), or {"image": base64} as newer clients send it.
absl::Status ReadUnitImage(const nlohmann::json& unit, std::string* png) {
  const char* key = unit.contains("input_image") ? "input_image" : "image";
  auto it = unit.find(key);
  if (it != unit.end() && it->is_object()) it = it->find("image");
  if (it == unit.end() || !it->is_string() || it->get_ref<const std::string&>().empty()) {
    return absl::InvalidArgumentError("input_image: a base64 PNG is required");
  }
  return DecodeBase64Png(it->get<std::string>(), "input_image", png);
}

// control_mode, as a number (0, 1, 2) or the extension's names: Balanced, or "ControlNet is
// more important" (guess mode). "My prompt is more important" has no spriteforge form.
absl::Status ReadControlMode(const nlohmann::json& unit, bool* guess_mode) {
  static const char* kNames[] = {"Balanced", "My prompt is more important", "ControlNet is more important"};
  auto it = unit.find("control_mode");
  if (it == unit.end() || it->is_null()) return absl::OkStatus();
  int mode = -1;
  if (it->is_number_integer()) mode = it->get<int>();
  for (int i = 0; i < 3 && it->is_string(); ++i) {
    if (it->get_ref<const std::string&>() == kNames[i]) mode = i;
  }
  if (mode < 0 || mode > 2) {
    return absl::InvalidArgumentError("control_mode: expected 0 (Balanced) or 2 (ControlNet is more important)");
  }
  if (mode == 1) {
    return absl::InvalidArgumentError(
        "control_mode: 'My prompt is more important' is not supported (Balanced or ControlNet is more important)");
  }
  *guess_mode = mode == 2;
  return absl::OkStatus();
}

// One alwayson_scripts.controlnet.args entry; `module` lower-cased.
absl::StatusOr<ControlUnit> ReadControlUnit(const nlohmann::json& unit) {
  if (!unit.is_object()) return absl::InvalidArgumentError("expected an object");
  ControlUnit u;
  RETURN_IF_ERROR(ReadString(unit, "module", &u.module));
  u.module = absl::AsciiStrToLower(u.module);
  if (u.module != "none" && u.module != "canny" && !absl::StartsWith(u.module, "ip-adapter")) {
    return absl::InvalidArgumentError(
        absl::StrCat("module: '", u.module, "' is not available (none, canny, ip-adapter_clip_sdxl_plus_vith, ...)"));
  }
  RETURN_IF_ERROR(ReadString(unit, "model", &u.model));
  u.model = u.model.substr(0, u.model.find(" ["));  // A1111 lists models as "name [hash]"
  if (u.model.empty() || u.model == "None") return absl::InvalidArgumentError("model: a model name is required");
  if (u.model.find_first_of("/\\") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("model: '", u.model, "' must be a name the workers know, not a path"));
  }
  // Their ranges are the builder's, as a manifest's scale, start and end.
  constexpr double kAny = std::numeric_limits<double>::max();
  RETURN_IF_ERROR(ReadNumber(unit, "weight", -kAny, kAny, &u.weight));
  RETURN_IF_ERROR(ReadNumber(unit, "guidance_start", -kAny, kAny, &u.guidance_start));
  RETURN_IF_ERROR(ReadNumber(unit, "guidance_end", -kAny, kAny, &u.guidance_end));
  RETURN_IF_ERROR(ReadControlMode(unit, &u.guess_mode));
  if (u.guess_mode && absl::StartsWith(u.module, "ip-adapter")) {
    return absl::InvalidArgumentError("control_mode: an IP-Adapter unit is always Balanced");
  }
  if (u.module == "canny") {
    // A1111 sends -1 for a slider left alone: the preprocessor's default then.
    double low = -1, high = -1;
    RETURN_IF_ERROR(ReadNumber(unit, "threshold_a", -1, 255, &low));
    RETURN_IF_ERROR(ReadNumber(unit, "threshold_b", -1, 255, &high));
    if (low >= 0) u.threshold_a = low;
    if (high >= 0) u.threshold_b = high;
  }
  RETURN_IF_ERROR(ReadUnitImage(unit, &u.png));
  return u;
}

// alwayson_scripts: only the ControlNet extension's units, split into ControlNets and the
// IP-Adapter's references (one adapter: its units must agree on model and weight).
absl::Status ReadAlwaysOnScripts(const nlohmann::json& body, const ManifestLimits& limits, Txt2Img* r) {
  auto scripts = body.find("alwayson_scripts");
  if (scripts == body.end() || scripts->is_null()) return absl::OkStatus();
  if (!scripts->is_object()) return absl::InvalidArgumentError("alwayson_scripts: expected an object");
  for (const auto& [name, script] : scripts->items()) {
    if (name != "controlnet" && !script.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("alwayson_scripts.", name, ": not supported by spriteforge"));
    }
  }
  auto controlnet = scripts->find("controlnet");
  if (controlnet == scripts->end() || controlnet->is_null()) return absl::OkStatus();
  const nlohmann::json* args = controlnet->is_object() && controlnet->contains("args") ? &(*controlnet)["args"] : nullptr;
  if (args == nullptr || !args->is_array()) return absl::InvalidArgumentError("alwayson_scripts.controlnet.args: expected a list of units");
  for (size_t i = 0; i < args->size(); ++i) {
    const std::string field = absl::StrCat("alwayson_scripts.controlnet.args[", i, "].");
    bool enabled = true;
    if ((*args)[i].is_object()) RETURN_IF_ERROR(Prefixed(field, ReadBool((*args)[i], "enabled", &enabled)));
    if (!enabled) continue;
    auto unit = ReadControlUnit((*args)[i]);
    if (!unit.ok()) return Prefixed(field, unit.status());
    unit->field = field;
    if (!absl::StartsWith(unit->module, "ip-adapter")) {
      r->controls.push_back(*std::move(unit));
    } else if (!r->references.empty() &&
               (unit->model != r->references[0].model || unit->weight != r->references[0].weight)) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, "model: one IP-Adapter per request: its units must share model and weight (",
          r->references[0].model, " ", r->references[0].weight, ")"));
    } else {
      r->references.push_back(*std::move(unit));
    }
  }
  return absl::OkStatus();
}

std::string ControlImagePath(size_t i) { return absl::StrCat("controlnet", i, ".png"); }
std::string ReferenceImagePath(size_t i) { return absl::StrCat("reference", i, ".png"); }
constexpr char kInitImagePath[] = "init.png";

// `<lora:name>` and `<lora:name:weight>` as A1111's extra networks read them: each tag is
// taken out of the text and its LoRA added. A1111's separate text-encoder and UNet weights
// (`<lora:name:0.8:0.5>`) are refused: spriteforge applies one strength to both.
absl::Status TakePromptLoras(const std::string& prompt, std::string* text, std::vector<PromptLora>* loras) {
  static const std::regex kTag("<lora:([^:>]*)(?::([^>]*))?>");
  text->clear();
  auto from = prompt.cbegin();
  for (std::sregex_iterator it(prompt.begin(), prompt.end(), kTag), end; it != end; ++it) {
    const std::smatch& m = *it;
    text->append(from, m[0].first);
    from = m[0].second;
    PromptLora lora{m[1].str(), 1.0};
    const std::string weight = m[2].str();
    if (weight.find(':') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "prompt: ", m[0].str(), ": one weight per LoRA (separate text-encoder and UNet weights are not supported)"));
    }
    if (m[2].matched) {
      char* end_of_number = nullptr;
      lora.weight = std::strtod(weight.c_str(), &end_of_number);
      if (weight.empty() || *end_of_number != '\0') {
        return absl::InvalidArgumentError(absl::StrCat("prompt: ", m[0].str(), ": the weight must be a number"));
      }
    }
    loras->push_back(std::move(lora));
  }
  text->append(from, prompt.cend());
  return absl::OkStatus();
}

// The ControlNet extension's units as spriteforge's ControlNets and IP-Adapter: the one
// place the A1111 form meets spriteforge's. Their images go by the paths of Txt2ImgFiles.
absl::Status FillControls(const Txt2Img& r, EntryBuilder& b) {
  const FieldRef units{"alwayson_scripts.controlnet.args"};
  RETURN_IF_ERROR(b.ClearControls(units, r.controls.size()));
  for (size_t i = 0; i < r.controls.size(); ++i) {
    const ControlUnit& u = r.controls[i];
    RETURN_IF_ERROR(b.AddControlNet({u.field.substr(0, u.field.size() - 1)}, {u.field + "model"}, u.model));
    RETURN_IF_ERROR(b.SetControlScale({u.field + "weight"}, u.weight));
    RETURN_IF_ERROR(b.SetControlSpan({u.field + "guidance_start"}, u.guidance_start, {u.field + "guidance_end"}, u.guidance_end));
    RETURN_IF_ERROR(b.SetControlGuessMode({u.field + "control_mode"}, u.guess_mode));
    if (u.module == "canny") {
      // Whole numbers, as OpenCV's Canny takes them from A1111's sliders.
      RETURN_IF_ERROR(b.SetControlCanny({u.field + "input_image"}, ControlImagePath(i), {u.field + "threshold_a"},
                                        static_cast<int>(std::lround(u.threshold_a)),
                                        static_cast<int>(std::lround(u.threshold_b))));
    } else {
      RETURN_IF_ERROR(b.SetControlImage({u.field + "input_image"}, ControlImagePath(i)));
    }
  }
  if (r.references.empty()) return absl::OkStatus();
  RETURN_IF_ERROR(b.ClearReferenceImages(units, r.references.size()));
  for (size_t i = 0; i < r.references.size(); ++i) {
    RETURN_IF_ERROR(b.AddReferenceImage({r.references[i].field + "input_image"}, ReferenceImagePath(i)));
  }
  const ControlUnit& adapter = r.references[0];
  RETURN_IF_ERROR(b.SetIpAdapter({adapter.field + "model"}, adapter.model, {adapter.field + "model"}, ""));
  return b.SetIpAdapterScale({adapter.field + "weight"}, adapter.weight);
}

// The request's images, described from their bytes as the coordinator describes uploads.
FileResolver InlineImages(const std::map<std::string, std::string>& files) {
  return [&files](const std::string& path, ManifestFileKind kind) -> absl::StatusOr<ManifestFile> {
    auto it = files.find(path);
    if (it == files.end() || kind != ManifestFileKind::kImage) return absl::InvalidArgumentError("an image is required");
    return DescribeImageBytes(it->second);
  };
}

// The request as spriteforge's typed item: every value checked as a manifest's is.
absl::StatusOr<ManifestEntry> BuildEntry(const Txt2Img& r, const ManifestLimits& limits) {
  const std::map<std::string, std::string> files = Txt2ImgFiles(r);
  EntryBuilder b(limits, InlineImages(files));
  // A1111 always encodes the negative prompt, empty or not.
  RETURN_IF_ERROR(b.SetPrompt({"prompt"}, r.prompt_text));
  RETURN_IF_ERROR(b.SetNegative({"negative_prompt"}, r.negative_prompt));
  RETURN_IF_ERROR(b.SetSteps({"steps"}, r.steps));
  RETURN_IF_ERROR(b.SetWidth({"width"}, r.width));
  RETURN_IF_ERROR(b.SetHeight({"height"}, r.height));
  RETURN_IF_ERROR(b.SetCfg({"cfg_scale"}, r.cfg_scale));
  RETURN_IF_ERROR(b.SetSampler({"sampler_name"}, r.sampler));
  RETURN_IF_ERROR(b.SetSchedule({"scheduler"}, r.schedule));
  b.SetTileable(r.tiling);
  RETURN_IF_ERROR(b.SetCount({"batch_size x n_iter"}, r.images()));
  b.SetSeed(r.first_seed);
  RETURN_IF_ERROR(FillControls(r, b));
  RETURN_IF_ERROR(b.ClearLoras({"prompt"}, r.loras.size()));
  for (const PromptLora& lora : r.loras) {
    const FieldRef tag{absl::StrCat("prompt <lora:", lora.name, ">")};
    RETURN_IF_ERROR(b.AddLoraByName(tag, lora.name));
    RETURN_IF_ERROR(b.SetLoraStrength(tag, lora.weight));
  }
  if (!r.init_png.empty()) {
    RETURN_IF_ERROR(b.SetInitImage({"init_images[0]"}, kInitImagePath));
    RETURN_IF_ERROR(b.SetStrength({"denoising_strength"}, r.denoising_strength));
  }
  return b.Build({""});
}

// img2img's own fields: its start image, which also gives the default size.
absl::Status ReadInitImage(const nlohmann::json& body, Txt2Img* r) {
  auto images = body.find("init_images");
  if (images == body.end() || !images->is_array() || images->empty() || !(*images)[0].is_string()) {
    return absl::InvalidArgumentError("init_images: a list of one base64 PNG is required");
  }
  if (images->size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat("init_images: one image per request, not ", images->size()));
  }
  RETURN_IF_ERROR(DecodeBase64Png((*images)[0].get<std::string>(), "init_images[0]", &r->init_png));
  ASSIGN_OR_RETURN(const ManifestFile described, DescribeImageBytes(r->init_png));
  r->width = described.width;
  r->height = described.height;
  int64_t resize_mode = 0;
  RETURN_IF_ERROR(ReadInt(body, "resize_mode", std::numeric_limits<int64_t>::min(),
                          std::numeric_limits<int64_t>::max(), &resize_mode));
  if (resize_mode != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "resize_mode: ", resize_mode, " is not supported; only 0 (Just resize: stretched to width x height)"));
  }
  constexpr double kAny = std::numeric_limits<double>::max();
  return ReadNumber(body, "denoising_strength", -kAny, kAny, &r->denoising_strength);
}

// A1111's "Just resize": a start image of another size than the request's is stretched to
// it (no crop, aspect not kept) and the stretched PNG is what the job starts from. A size the
// builder would refuse is left for its message, naming width or height.
absl::Status FitInitImage(const ManifestLimits& limits, Txt2Img* r) {
  ASSIGN_OR_RETURN(const ManifestFile described, DescribeImageBytes(r->init_png));
  if (described.width == r->width && described.height == r->height) return absl::OkStatus();
  auto in_range = [&limits](int64_t size) { return size >= limits.min_size && size <= limits.max_size; };
  if (!in_range(r->width) || !in_range(r->height)) return absl::OkStatus();
  // Decoding costs 4 bytes a pixel: the start image may be larger than any render, not unboundedly.
  const int64_t max_pixels = 4 * int64_t(limits.max_size) * limits.max_size;
  if (int64_t(described.width) * described.height > max_pixels) {
    return absl::InvalidArgumentError(absl::StrCat("init_images[0]: is ", described.width, "x", described.height,
                                                   "; at most ", max_pixels, " pixels to resize"));
  }
  ASSIGN_OR_RETURN(const RasterImage image, DecodePng(r->init_png));
  ASSIGN_OR_RETURN(const RasterImage stretched,
                   control::StretchImage(image, static_cast<int>(r->width), static_cast<int>(r->height)));
  ASSIGN_OR_RETURN(r->init_png, EncodePng(stretched));
  return absl::OkStatus();
}

absl::StatusOr<Txt2Img> ParseRequest(const nlohmann::json& body, Route route, const ManifestLimits& limits,
                                     int max_images, const std::function<uint64_t()>& draw_seed) {
  Txt2Img r;
  RETURN_IF_ERROR(CheckFieldNames(body, route, &r.ignored));
  RETURN_IF_ERROR(RefuseUnsupported(body));
  if (route == Route::kImg2Img) RETURN_IF_ERROR(ReadInitImage(body, &r));
  absl::Status s;
  RETURN_IF_ERROR(ReadString(body, "prompt", &r.prompt));
  RETURN_IF_ERROR(TakePromptLoras(r.prompt, &r.prompt_text, &r.loras));
  RETURN_IF_ERROR(ReadString(body, "negative_prompt", &r.negative_prompt));
  RETURN_IF_ERROR(ReadInt(body, "seed", -1, std::numeric_limits<int64_t>::max(), &r.seed));
  // Ranges of image settings are the builder's (BuildEntry); these reads take any number.
  constexpr int64_t kAnyInt = std::numeric_limits<int64_t>::max();
  constexpr double kAny = std::numeric_limits<double>::max();
  RETURN_IF_ERROR(ReadInt(body, "steps", -kAnyInt, kAnyInt, &r.steps));
  RETURN_IF_ERROR(ReadInt(body, "width", -kAnyInt, kAnyInt, &r.width));
  RETURN_IF_ERROR(ReadInt(body, "height", -kAnyInt, kAnyInt, &r.height));
  RETURN_IF_ERROR(ReadNumber(body, "cfg_scale", -kAny, kAny, &r.cfg_scale));
  RETURN_IF_ERROR(ReadInt(body, "batch_size", 1, max_images, &r.batch_size));
  RETURN_IF_ERROR(ReadInt(body, "n_iter", 1, max_images, &r.n_iter));
  if (r.images() > max_images) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch_size x n_iter: ", r.images(), " images; at most ", max_images, " per call"));
  }
  RETURN_IF_ERROR(ReadBool(body, "tiling", &r.tiling));
  RETURN_IF_ERROR(ReadAlwaysOnScripts(body, limits, &r));
  // sampler_index is A1111's older name for the same field.
  RETURN_IF_ERROR(ReadString(body, "sampler_index", &r.sampler_name));
  RETURN_IF_ERROR(ReadString(body, "sampler_name", &r.sampler_name));
  RETURN_IF_ERROR(ReadString(body, "scheduler", &r.scheduler));
  std::string implied;
  const A1111Sampler* sampler = nullptr;
  RETURN_IF_ERROR(MapSampler(r.sampler_name, &sampler, &implied));
  r.sampler = SamplerName(sampler->sampler);
  if (!implied.empty() && (r.scheduler.empty() || absl::AsciiStrToLower(r.scheduler) == "automatic")) r.scheduler = "Karras";
  RETURN_IF_ERROR(MapScheduler(r.scheduler, *sampler, &r.schedule));
  if (auto it = body.find("override_settings"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) return absl::InvalidArgumentError("override_settings: expected an object");
    std::string checkpoint;
    if (s = ReadString(*it, "sd_model_checkpoint", &checkpoint); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("override_settings.", s.message()));
    }
    // A1111 titles read "name [hash]"; the name is what workers advertise.
    r.model = checkpoint.substr(0, checkpoint.find(" ["));
  }
  r.first_seed = r.seed >= 0 ? static_cast<uint64_t>(r.seed) : draw_seed();
  if (route == Route::kImg2Img) RETURN_IF_ERROR(FitInitImage(limits, &r));
  ASSIGN_OR_RETURN(r.entry, BuildEntry(r, limits));
  return r;
}

}  // namespace

absl::StatusOr<Txt2Img> ParseTxt2Img(const nlohmann::json& body, const ManifestLimits& limits, int max_images,
                                     const std::function<uint64_t()>& draw_seed) {
  return ParseRequest(body, Route::kTxt2Img, limits, max_images, draw_seed);
}

absl::StatusOr<Txt2Img> ParseImg2Img(const nlohmann::json& body, const ManifestLimits& limits, int max_images,
                                     const std::function<uint64_t()>& draw_seed) {
  return ParseRequest(body, Route::kImg2Img, limits, max_images, draw_seed);
}

absl::Status CheckPromptLoras(const Txt2Img& r, const std::set<std::string>& available) {
  for (const PromptLora& lora : r.loras) {
    if (!available.count(lora.name)) {
      return absl::NotFoundError(absl::StrCat("prompt: <lora:", lora.name, ">: no connected worker has LoRA '",
                                              lora.name, "' in its LoRA folder (",
                                              available.empty() ? "none has LoRAs" : absl::StrJoin(available, ", "),
                                              ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Manifest> Txt2ImgManifest(const Txt2Img& r, const std::string& model, const ManifestLimits& limits,
                                         int preview_every) {
  ManifestBuilder m(limits);
  RETURN_IF_ERROR(m.SetName({"name"}, r.init_png.empty() ? "txt2img" : "img2img"));
  RETURN_IF_ERROR(m.SetModel({"override_settings.sd_model_checkpoint"}, model));
  RETURN_IF_ERROR(m.SetPreviewEvery({"show_progress_every_n_steps"}, std::min(preview_every, limits.max_steps)));
  RETURN_IF_ERROR(m.AddEntry({"batch_size x n_iter"}, r.entry));
  return m.Build();
}

std::map<std::string, std::string> Txt2ImgFiles(const Txt2Img& r) {
  std::map<std::string, std::string> files;
  for (size_t i = 0; i < r.controls.size(); ++i) files[ControlImagePath(i)] = r.controls[i].png;
  for (size_t i = 0; i < r.references.size(); ++i) files[ReferenceImagePath(i)] = r.references[i].png;
  if (!r.init_png.empty()) files[kInitImagePath] = r.init_png;
  return files;
}

nlohmann::json Txt2ImgParameters(const Txt2Img& r) {
  nlohmann::json p = {{"prompt", r.prompt},        {"negative_prompt", r.negative_prompt},
                      {"seed", r.seed},            {"steps", r.steps},
                      {"cfg_scale", r.cfg_scale},  {"width", r.width},
                      {"height", r.height},        {"sampler_name", r.sampler_name},
                      {"scheduler", r.scheduler},  {"batch_size", r.batch_size},
                      {"n_iter", r.n_iter},        {"tiling", r.tiling},
                      {"override_settings", nlohmann::json::object()}};
  if (!r.model.empty()) p["override_settings"]["sd_model_checkpoint"] = r.model;
  if (!r.init_png.empty()) {
    // A1111 leaves the images out of the echo unless include_init_images is set.
    p["init_images"] = nullptr;
    p["denoising_strength"] = r.denoising_strength;
    p["resize_mode"] = 0;
  }
  return p;
}

std::string Txt2ImgInfo(const Txt2Img& r, const std::string& model, const std::vector<v1::Item>& items) {
  nlohmann::json infotexts = nlohmann::json::array();
  std::vector<uint64_t> seeds;
  for (const v1::Item& item : items) {
    seeds.push_back(item.params().seed());
    // The same text the workers write into each PNG, from the item as the job stored it.
    infotexts.push_back(FormatParametersText(model, item.params(), item.sampling()));
  }
  char stamp[32] = "";
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::strftime(stamp, sizeof stamp, "%Y%m%d%H%M%S", &tm);
  const size_t n = seeds.size();
  // The ControlNet extension adds its units here as well as to each infotext.
  nlohmann::json extra = nlohmann::json::object();
  if (!items.empty()) {
    const std::vector<std::string> units = ControlNetUnits(items[0].params(), items[0].sampling());
    for (size_t i = 0; i < units.size(); ++i) extra[absl::StrCat("ControlNet ", i)] = nlohmann::json::parse(units[i]);
  }
  const nlohmann::json info = {
      {"prompt", r.prompt},
      {"all_prompts", std::vector<std::string>(n, r.prompt)},
      {"negative_prompt", r.negative_prompt},
      {"all_negative_prompts", std::vector<std::string>(n, r.negative_prompt)},
      {"seed", seeds.empty() ? r.first_seed : seeds.front()},
      {"all_seeds", seeds},
      {"subseed", seeds.empty() ? r.first_seed : seeds.front()},
      {"all_subseeds", seeds},
      {"subseed_strength", 0},
      {"width", r.width},
      {"height", r.height},
      {"sampler_name", r.sampler_name},
      {"scheduler", r.scheduler},
      {"cfg_scale", r.cfg_scale},
      {"steps", r.steps},
      {"batch_size", r.batch_size},
      {"restore_faces", false},
      {"sd_model_name", model},
      {"seed_resize_from_w", -1},
      {"seed_resize_from_h", -1},
      {"denoising_strength", r.init_png.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.denoising_strength)},
      {"extra_generation_params", extra},
      {"index_of_first_image", 0},
      {"infotexts", infotexts},
      {"styles", nlohmann::json::array()},
      {"job_timestamp", stamp},
      {"clip_skip", 1},
      {"is_using_inpainting_conditioning", false},
      {"version", "spriteforge"},
      // The request's A1111 fields that changed nothing here (saving, grids, eta, ...).
      {"ignored_fields", r.ignored}};
  return info.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

nlohmann::json A1111Samplers() {
  nlohmann::json list = nlohmann::json::array();
  for (const A1111Sampler& s : kSamplers) {
    nlohmann::json options = nlohmann::json::object();
    if (s.automatic != v1::SCHEDULE_NORMAL) options["scheduler"] = ScheduleName(s.automatic);
    list.push_back({{"name", A1111SamplerName(s.sampler)}, {"aliases", {s.alias}}, {"options", options}});
  }
  return list;
}

// ---- Per-caller options and progress

A1111Sessions::Options A1111Sessions::OptionsOf(const std::string& caller) {
  std::lock_guard<std::mutex> lock(mu_);
  return sessions_[caller].options;
}

absl::Status A1111Sessions::SetOptions(const std::string& caller, const nlohmann::json& body,
                                       const std::set<std::string>& served) {
  // Checked whole before anything changes, as a refused POST must leave the options alone.
  Options options = OptionsOf(caller);
  for (const auto& [key, value] : body.items()) {
    if (key != "sd_model_checkpoint" && key != "show_progress_every_n_steps" && key != "live_previews_enable") {
      return absl::InvalidArgumentError(absl::StrCat(
          key, ": not an option spriteforge has (sd_model_checkpoint, show_progress_every_n_steps, live_previews_enable)"));
    }
  }
  std::string checkpoint;
  RETURN_IF_ERROR(ReadString(body, "sd_model_checkpoint", &checkpoint));
  if (body.contains("sd_model_checkpoint")) {
    // A1111 titles read "name [hash]"; the name is what workers advertise.
    checkpoint = checkpoint.substr(0, checkpoint.find(" ["));
    if (!served.count(checkpoint)) {
      return absl::InvalidArgumentError(absl::StrCat("sd_model_checkpoint: '", checkpoint,
                                                     "' is not served by any connected worker (",
                                                     absl::StrJoin(served, ", "), ")"));
    }
    options.model = checkpoint;
  }
  // A1111: -1 shows the image only when it is done; 0 likewise here.
  int64_t every = options.preview_every;
  RETURN_IF_ERROR(ReadInt(body, "show_progress_every_n_steps", -1, 1000, &every));
  options.preview_every = static_cast<int>(std::max<int64_t>(every, 0));
  bool previews = true;
  RETURN_IF_ERROR(ReadBool(body, "live_previews_enable", &previews));
  if (!previews) options.preview_every = 0;
  std::lock_guard<std::mutex> lock(mu_);
  sessions_[caller].options = options;
  return absl::OkStatus();
}

nlohmann::json A1111Sessions::OptionsJson(const std::string& caller, const std::string& model) {
  const Options options = OptionsOf(caller);
  return {{"sd_model_checkpoint", model.empty() ? nlohmann::json(nullptr) : nlohmann::json(model)},
          {"sd_checkpoint_hash", nullptr},
          {"show_progress_every_n_steps", options.preview_every == 0 ? -1 : options.preview_every},
          {"live_previews_enable", options.preview_every > 0},
          {"samples_format", "png"},
          {"CLIP_stop_at_last_layers", 1}};
}

int64_t A1111Sessions::Begin(const std::string& caller, const Txt2Img& request,
                             std::chrono::steady_clock::time_point now) {
  char stamp[32] = "";
  const std::time_t wall = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&wall, &tm);
  std::strftime(stamp, sizeof stamp, "%Y%m%d%H%M%S", &tm);
  std::lock_guard<std::mutex> lock(mu_);
  Running run;
  run.call = next_call_++;
  run.images = request.images();
  run.batch_size = static_cast<int>(request.batch_size);
  run.n_iter = static_cast<int>(request.n_iter);
  run.steps = static_cast<int>(request.steps);
  run.timestamp = stamp;
  run.started = now;
  sessions_[caller].running = run;
  return run.call;
}

void A1111Sessions::Apply(const std::string& caller, int64_t call, const v1::JobEvent& event) {
  std::lock_guard<std::mutex> lock(mu_);
  std::optional<Running>& run = sessions_[caller].running;
  if (!run || run->call != call) return;
  if (event.has_job()) run->done = event.job().counts().done();
  if (event.has_progress()) {
    run->running = event.progress().indices_size();
    run->step = event.progress().step();
    run->steps = event.progress().total_steps();
  } else if (event.has_item_done()) {
    run->running = std::max(run->running - 1, 0);
  } else if (event.has_preview()) {
    run->preview_png = event.preview().png();
  }
}

void A1111Sessions::End(const std::string& caller, int64_t call) {
  std::lock_guard<std::mutex> lock(mu_);
  std::optional<Running>& run = sessions_[caller].running;
  if (run && run->call == call) run.reset();
}

nlohmann::json A1111Sessions::Progress(const std::string& caller, bool skip_current_image,
                                       std::chrono::steady_clock::time_point now) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::optional<Running>& run = sessions_[caller].running;
  nlohmann::json state = {{"skipped", false},        {"interrupted", false}, {"stopping_generation", false},
                          {"job", ""},               {"job_count", 0},       {"job_timestamp", "0"},
                          {"job_no", 0},             {"sampling_step", 0},   {"sampling_steps", 0}};
  if (!run) {
    return {{"progress", 0.0}, {"eta_relative", 0.0}, {"state", state}, {"current_image", nullptr}, {"textinfo", nullptr}};
  }
  // Images done, and the running batch's share of its steps.
  const double step_share = run->steps > 0 ? static_cast<double>(run->step) / run->steps : 0.0;
  const double progress = run->images > 0 ? std::clamp((run->done + run->running * step_share) / run->images, 0.0, 1.0) : 0.0;
  const double elapsed = std::chrono::duration<double>(now - run->started).count();
  const int job_no = std::min(run->done / std::max(run->batch_size, 1), std::max(run->n_iter - 1, 0));
  state["job"] = absl::StrCat("Batch ", job_no + 1, " out of ", run->n_iter);
  state["job_count"] = run->n_iter;
  state["job_timestamp"] = run->timestamp;
  state["job_no"] = job_no;
  state["sampling_step"] = run->step;
  state["sampling_steps"] = run->steps;
  nlohmann::json image = nullptr;
  if (!skip_current_image && !run->preview_png.empty()) image = absl::Base64Escape(run->preview_png);
  return {{"progress", progress},
          {"eta_relative", progress > 0 ? elapsed / progress - elapsed : 0.0},
          {"state", state},
          {"current_image", image},
          {"textinfo", nullptr}};
}

}  // namespace spriteforge::coordinator::http
