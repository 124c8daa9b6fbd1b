#include "coordinator/transport/http/a1111.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/generation_info.h"
#include "common/manifest_builder.h"
#include "common/manifest_files.h"
#include "common/sampling.h"
#include "common/status_macros.h"
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
  for (const char* key : {"enable_hr", "restore_faces", "subseed_strength", "script_name", "init_images", "mask"}) {
    if (set(key)) return absl::InvalidArgumentError(absl::StrCat(key, ": not supported by spriteforge"));
  }
  return absl::OkStatus();
}

absl::Status Prefixed(const std::string& prefix, const absl::Status& s) {
  return s.ok() ? s : absl::Status(s.code(), absl::StrCat(prefix, s.message()));
}

// A unit's image: base64 (a data: URL too), or {"image": base64} as newer clients send it.
absl::Status ReadUnitImage(const nlohmann::json& unit, std::string* png) {
  const char* key = unit.contains("input_image") ? "input_image" : "image";
  auto it = unit.find(key);
  if (it != unit.end() && it->is_object()) it = it->find("image");
  if (it == unit.end() || !it->is_string() || it->get_ref<const std::string&>().empty()) {
    return absl::InvalidArgumentError("input_image: a base64 PNG is required");
  }
  std::string text = it->get<std::string>();
  if (absl::StartsWith(text, "data:")) text = text.substr(text.find(',') + 1);
  static const std::string kPngSignature = "\x89PNG\r\n\x1a\n";
  if (!absl::Base64Unescape(text, png) || !absl::StartsWith(*png, kPngSignature)) {
    return absl::InvalidArgumentError("input_image: expected a base64 PNG");
  }
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
  RETURN_IF_ERROR(b.SetPrompt({"prompt"}, r.prompt));
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
  return b.Build({""});
}

}  // namespace

absl::StatusOr<Txt2Img> ParseTxt2Img(const nlohmann::json& body, const ManifestLimits& limits, int max_images,
                                     const std::function<uint64_t()>& draw_seed) {
  RETURN_IF_ERROR(RefuseUnsupported(body));
  Txt2Img r;
  absl::Status s;
  RETURN_IF_ERROR(ReadString(body, "prompt", &r.prompt));
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
  ASSIGN_OR_RETURN(r.entry, BuildEntry(r, limits));
  return r;
}

absl::StatusOr<Manifest> Txt2ImgManifest(const Txt2Img& r, const std::string& model, const ManifestLimits& limits) {
  ManifestBuilder m(limits);
  RETURN_IF_ERROR(m.SetName({"name"}, "txt2img"));
  RETURN_IF_ERROR(m.SetModel({"override_settings.sd_model_checkpoint"}, model));
  RETURN_IF_ERROR(m.AddEntry({"batch_size x n_iter"}, r.entry));
  return m.Build();
}

std::map<std::string, std::string> Txt2ImgFiles(const Txt2Img& r) {
  std::map<std::string, std::string> files;
  for (size_t i = 0; i < r.controls.size(); ++i) files[ControlImagePath(i)] = r.controls[i].png;
  for (size_t i = 0; i < r.references.size(); ++i) files[ReferenceImagePath(i)] = r.references[i].png;
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
      {"denoising_strength", nullptr},
      {"extra_generation_params", extra},
      {"index_of_first_image", 0},
      {"infotexts", infotexts},
      {"styles", nlohmann::json::array()},
      {"job_timestamp", stamp},
      {"clip_skip", 1},
      {"is_using_inpainting_conditioning", false},
      {"version", "spriteforge"}};
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

}  // namespace spriteforge::coordinator::http
