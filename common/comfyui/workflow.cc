#include "common/comfyui/workflow.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <optional>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/manifest_builder.h"
#include "common/sampling.h"
#include "common/status_macros.h"

namespace spriteforge::comfyui {
namespace {

using json = nlohmann::json;

// ComfyUI's sampler and scheduler names -> spriteforge's (common/sampling.h). ComfyUI's
// "simple" takes evenly spaced timesteps from the top, as trailing spacing does.
struct NamePair {
  const char* comfy;
  v1::Sampler sampler;
  v1::Schedule schedule;
};
constexpr NamePair kSamplers[] = {
    {"euler", v1::SAMPLER_EULER, {}},
    {"euler_ancestral", v1::SAMPLER_EULER_ANCESTRAL, {}},
    {"dpmpp_2m", v1::SAMPLER_DPMPP_2M, {}},
    {"lcm", v1::SAMPLER_LCM, {}},
};
constexpr NamePair kSchedulers[] = {
    {"normal", {}, v1::SCHEDULE_NORMAL},
    {"karras", {}, v1::SCHEDULE_KARRAS},
    {"sgm_uniform", {}, v1::SCHEDULE_SGM_UNIFORM},
    {"simple", {}, v1::SCHEDULE_TRAILING},
};

const std::vector<NodeSpec>& Specs() {
  static const auto* specs = new std::vector<NodeSpec>{
      {"CheckpointLoaderSimple", "loaders", {{"ckpt_name", "STRING"}}, {"MODEL", "CLIP", "VAE"}},
      {"LoraLoader", "loaders",
       {{"model", "MODEL"}, {"clip", "CLIP"}, {"lora_name", "STRING"}, {"strength_model", "FLOAT"},
        {"strength_clip", "FLOAT"}},
       {"MODEL", "CLIP"}},
      {"LoraLoaderModelOnly", "loaders", {{"model", "MODEL"}, {"lora_name", "STRING"}, {"strength_model", "FLOAT"}},
       {"MODEL"}},
      {"CLIPTextEncode", "conditioning", {{"text", "STRING"}, {"clip", "CLIP"}}, {"CONDITIONING"}},
      {"CLIPTextEncodeSDXL", "advanced/conditioning",
       {{"clip", "CLIP"}, {"width", "INT"}, {"height", "INT"}, {"crop_w", "INT"}, {"crop_h", "INT"},
        {"target_width", "INT"}, {"target_height", "INT"}, {"text_g", "STRING"}, {"text_l", "STRING"}},
       {"CONDITIONING"}},
      {"EmptyLatentImage", "latent", {{"width", "INT"}, {"height", "INT"}, {"batch_size", "INT"}}, {"LATENT"}},
      {"LoadImage", "image", {{"image", "STRING"}}, {"IMAGE", "MASK"}},
      {"VAEEncode", "latent", {{"pixels", "IMAGE"}, {"vae", "VAE"}}, {"LATENT"}},
      {"RepeatLatentBatch", "latent/batch", {{"samples", "LATENT"}, {"amount", "INT"}}, {"LATENT"}},
      {"KSampler", "sampling",
       {{"model", "MODEL"}, {"seed", "INT"}, {"steps", "INT"}, {"cfg", "FLOAT"}, {"sampler_name", "SAMPLER"},
        {"scheduler", "SCHEDULER"}, {"positive", "CONDITIONING"}, {"negative", "CONDITIONING"},
        {"latent_image", "LATENT"}, {"denoise", "FLOAT", false}},
       {"LATENT"}},
      {"KSamplerAdvanced", "sampling",
       {{"model", "MODEL"}, {"add_noise", "ENABLE"}, {"noise_seed", "INT"}, {"steps", "INT"}, {"cfg", "FLOAT"},
        {"sampler_name", "SAMPLER"}, {"scheduler", "SCHEDULER"}, {"positive", "CONDITIONING"},
        {"negative", "CONDITIONING"}, {"latent_image", "LATENT"}, {"start_at_step", "INT"}, {"end_at_step", "INT"},
        {"return_with_leftover_noise", "ENABLE"}},
       {"LATENT"}},
      {"VAEDecode", "latent", {{"samples", "LATENT"}, {"vae", "VAE"}}, {"IMAGE"}},
      {"ControlNetLoader", "loaders", {{"control_net_name", "STRING"}}, {"CONTROL_NET"}},
      {"ControlNetApplyAdvanced", "conditioning/controlnet",
       {{"positive", "CONDITIONING"}, {"negative", "CONDITIONING"}, {"control_net", "CONTROL_NET"},
        {"image", "IMAGE"}, {"strength", "FLOAT"}, {"start_percent", "FLOAT"}, {"end_percent", "FLOAT"},
        {"vae", "VAE", false}},
       {"CONDITIONING", "CONDITIONING"}},
      // cubiq's ComfyUI_IPAdapter_plus: the adapter and encoder by file, applied on the model path.
      {"IPAdapterModelLoader", "ipadapter/loaders", {{"ipadapter_file", "STRING"}}, {"IPADAPTER"}},
      {"CLIPVisionLoader", "loaders", {{"clip_name", "STRING"}}, {"CLIP_VISION"}},
      {"IPAdapter", "ipadapter",
       {{"model", "MODEL"}, {"ipadapter", "IPADAPTER"}, {"image", "IMAGE"}, {"weight", "FLOAT"}, {"start_at", "FLOAT"},
        {"end_at", "FLOAT"}, {"weight_type", "STRING"}, {"attn_mask", "MASK", false}},
       {"MODEL"}},
      {"IPAdapterAdvanced", "ipadapter",
       {{"model", "MODEL"}, {"ipadapter", "IPADAPTER"}, {"image", "IMAGE"}, {"weight", "FLOAT"},
        {"weight_type", "STRING"}, {"combine_embeds", "STRING"}, {"start_at", "FLOAT"}, {"end_at", "FLOAT"},
        {"embeds_scaling", "STRING", false}, {"image_negative", "IMAGE", false}, {"attn_mask", "MASK", false},
        {"clip_vision", "CLIP_VISION", false}},
       {"MODEL"}},
      {"SaveImage", "image", {{"images", "IMAGE"}, {"filename_prefix", "STRING"}}, {}, true},
      {"PreviewImage", "image", {{"images", "IMAGE"}}, {}, true},
  };
  return *specs;
}

// Nodes spriteforge knows but does not read, with the nodes to use instead.
struct RefusedNode {
  const char* class_type;
  const char* instead;
};
constexpr RefusedNode kRefusedNodes[] = {
    {"IPAdapterUnifiedLoader",
     "picks its files by preset; name them with IPAdapterModelLoader (and CLIPVisionLoader) instead"},
};

const NodeSpec* FindSpec(const std::string& class_type) {
  for (const NodeSpec& s : Specs()) {
    if (class_type == s.class_type) return &s;
  }
  return nullptr;
}

bool IsLiteralType(const std::string& type) {
  return type == "INT" || type == "FLOAT" || type == "STRING" || type == "SAMPLER" || type == "SCHEDULER" ||
         type == "ENABLE";
}

bool IsLink(const json& v) {
  return v.is_array() && v.size() == 2 && (v[0].is_string() || v[0].is_number_integer()) && v[1].is_number_integer();
}

std::string LinkNode(const json& link) {
  return link[0].is_string() ? link[0].get<std::string>() : std::to_string(link[0].get<int64_t>());
}

// Node ids in ComfyUI's order: numbers by value, then any others ("12:3" of group nodes).
std::vector<std::string> SortedIds(const json& workflow) {
  std::vector<std::string> ids;
  for (const auto& [id, node] : workflow.items()) ids.push_back(id);
  auto key = [](const std::string& id) {
    int64_t n = 0;
    const bool numeric = absl::SimpleAtoi(id, &n);
    return std::make_tuple(!numeric, numeric ? n : 0, id);
  };
  std::sort(ids.begin(), ids.end(), [&](const std::string& a, const std::string& b) { return key(a) < key(b); });
  return ids;
}

std::string Quoted(const json& v) { return v.dump(-1, ' ', false, json::error_handler_t::replace); }

// Reads a checked workflow's nodes and reports problems at "node 3 (KSampler).field".
class Reader {
 public:
  Reader(const json& workflow, const std::string& origin) : wf_(workflow), err_(origin) {}

  std::string Node(const std::string& id) const {
    return absl::StrCat("node ", id, " (", wf_[id]["class_type"].get<std::string>(), ")");
  }
  FieldRef At(const std::string& id, const std::string& input) const { return {absl::StrCat(Node(id), ".", input)}; }
  absl::Status Fail(const std::string& id, const std::string& input, const std::string& problem) const {
    return err_.At(At(id, input), problem);
  }
  const std::string& Class(const std::string& id) const { return wf_[id]["class_type"].get_ref<const std::string&>(); }
  const json& Input(const std::string& id, const std::string& name) const { return wf_[id]["inputs"][name]; }
  bool Has(const std::string& id, const std::string& name) const { return wf_[id]["inputs"].contains(name); }
  // The node a link input points at.
  std::string From(const std::string& id, const std::string& name) const { return LinkNode(Input(id, name)); }
  int Output(const std::string& id, const std::string& name) const { return Input(id, name)[1].get<int>(); }
  double Number(const std::string& id, const std::string& name, double fallback = 0) const {
    return Has(id, name) ? Input(id, name).get<double>() : fallback;
  }
  int64_t Int(const std::string& id, const std::string& name) const {
    return static_cast<int64_t>(std::llround(Input(id, name).get<double>()));
  }
  std::string Text(const std::string& id, const std::string& name) const { return Input(id, name).get<std::string>(); }

  absl::Status Validate() const;

 private:
  absl::Status CheckInput(const std::string& id, const InputSpec& spec) const;
  absl::Status CheckCycles() const;

  const json& wf_;
  FieldErrors err_;
};

absl::Status Reader::CheckInput(const std::string& id, const InputSpec& spec) const {
  const json& inputs = wf_[id]["inputs"];
  if (!inputs.contains(spec.name)) {
    return spec.required ? Fail(id, spec.name, "is required") : absl::OkStatus();
  }
  const json& v = inputs[spec.name];
  const std::string type = spec.type;
  if (!IsLiteralType(type)) {
    if (!IsLink(v)) return Fail(id, spec.name, absl::StrCat("must be a link [node id, output index] to a ", type, " output"));
    const std::string from = LinkNode(v);
    if (!wf_.contains(from)) return Fail(id, spec.name, absl::StrCat("links to node ", from, ", which the workflow does not have"));
    const NodeSpec* source = FindSpec(wf_[from]["class_type"].get<std::string>());
    const int64_t out = v[1].get<int64_t>();
    if (out < 0 || out >= static_cast<int64_t>(source->outputs.size())) {
      return Fail(id, spec.name, absl::StrCat("links to output ", out, " of ", Node(from), ", which has ",
                                              source->outputs.size(), " outputs"));
    }
    if (type != source->outputs[out]) {
      return Fail(id, spec.name, absl::StrCat("takes ", type, ", but output ", out, " of ", Node(from), " is ",
                                              source->outputs[out]));
    }
    return absl::OkStatus();
  }
  if (IsLink(v)) {
    return Fail(id, spec.name, absl::StrCat("is linked to node ", LinkNode(v), "; spriteforge reads this input as a value"));
  }
  if (type == "INT" && !(v.is_number() && std::floor(v.get<double>()) == v.get<double>())) {
    return Fail(id, spec.name, absl::StrCat(Quoted(v), " is not a whole number"));
  }
  if (type == "FLOAT" && !(v.is_number() && std::isfinite(v.get<double>()))) {
    return Fail(id, spec.name, absl::StrCat(Quoted(v), " is not a number"));
  }
  if ((type == "STRING" || type == "SAMPLER" || type == "SCHEDULER" || type == "ENABLE") && !v.is_string()) {
    return Fail(id, spec.name, absl::StrCat(Quoted(v), " is not a string"));
  }
  if (type == "ENABLE" && v != "enable" && v != "disable") {
    return Fail(id, spec.name, absl::StrCat(Quoted(v), " is not enable or disable"));
  }
  return absl::OkStatus();
}

absl::Status Reader::CheckCycles() const {
  // Depth-first over links; a node met again while still on the path closes a cycle.
  enum Mark { kNew, kOnPath, kDone };
  std::map<std::string, Mark> mark;
  std::function<absl::Status(const std::string&)> visit = [&](const std::string& id) -> absl::Status {
    mark[id] = kOnPath;
    for (const auto& [name, v] : wf_[id]["inputs"].items()) {
      if (!IsLink(v) || !wf_.contains(LinkNode(v))) continue;
      const std::string from = LinkNode(v);
      if (mark[from] == kOnPath) return Fail(id, name, absl::StrCat("links back to node ", from, ": the workflow has a cycle"));
      if (mark[from] == kNew) RETURN_IF_ERROR(visit(from));
    }
    mark[id] = kDone;
    return absl::OkStatus();
  };
  for (const std::string& id : SortedIds(wf_)) {
    if (mark[id] == kNew) RETURN_IF_ERROR(visit(id));
  }
  return absl::OkStatus();
}

absl::Status Reader::Validate() const {
  std::vector<std::string> known;
  for (const NodeSpec& s : Specs()) known.push_back(s.class_type);
  const std::vector<std::string> ids = SortedIds(wf_);
  for (const std::string& id : ids) {
    const NodeSpec* spec = FindSpec(wf_[id]["class_type"].get<std::string>());
    for (const RefusedNode& refused : kRefusedNodes) {
      if (Class(id) == refused.class_type) return err_.At({Node(id)}, absl::StrCat("is not read by spriteforge: it ", refused.instead));
    }
    if (spec == nullptr) {
      return err_.At({Node(id)}, absl::StrCat("is not a node spriteforge has (", absl::StrJoin(known, ", "), ")"));
    }
  }
  for (const std::string& id : ids) {
    for (const InputSpec& input : FindSpec(Class(id))->inputs) RETURN_IF_ERROR(CheckInput(id, input));
  }
  return CheckCycles();
}

// Fills one entry from the nodes a SaveImage is made from.
class EntryReader {
 public:
  EntryReader(const Reader& r, EntryBuilder& b, const FileResolver& files) : r_(r), b_(b), files_(files) {}

  // Returns the CheckpointLoaderSimple node the sampler's model comes from.
  absl::StatusOr<std::string> Read(const std::string& save);

 private:
  absl::StatusOr<std::string> ReadModel(const std::string& sampler, std::vector<std::string>* lora_loaders);
  absl::Status ReadIpAdapter(const std::string& apply);
  absl::Status ReadConditioning(const std::string& sampler, const std::string& checkpoint,
                                const std::vector<std::string>& lora_loaders);
  absl::StatusOr<std::string> ReadText(const std::string& encoder, const std::string& checkpoint,
                                       const std::vector<std::string>& lora_loaders);
  absl::Status ReadLatent(const std::string& sampler, const std::string& checkpoint, bool* img2img);
  absl::Status ReadSampler(const std::string& sampler, bool img2img);
  absl::Status RequireFrom(const std::string& id, const std::string& input, const std::string& want,
                           const std::string& why) const;
  absl::Status CheckSdxlSizes() const;

  const Reader& r_;
  EntryBuilder& b_;
  const FileResolver& files_;
  int64_t width_ = 0, height_ = 0;
  std::vector<std::string> sdxl_encoders_;
};

absl::Status EntryReader::RequireFrom(const std::string& id, const std::string& input, const std::string& want,
                                      const std::string& why) const {
  const std::string from = r_.From(id, input);
  if (r_.Class(from) == want) return absl::OkStatus();
  return r_.Fail(id, input, absl::StrCat("comes from ", r_.Node(from), "; spriteforge needs a ", want, " here", why));
}

absl::StatusOr<std::string> EntryReader::Read(const std::string& save) {
  const std::string decode = r_.From(save, "images");
  RETURN_IF_ERROR(RequireFrom(save, "images", "VAEDecode", " (it saves sampled images)"));
  const std::string sampler = r_.From(decode, "samples");
  const std::string& kind = r_.Class(sampler);
  if (kind != "KSampler" && kind != "KSamplerAdvanced") {
    return r_.Fail(decode, "samples", absl::StrCat("comes from ", r_.Node(sampler), "; spriteforge decodes what a KSampler or KSamplerAdvanced made"));
  }
  std::vector<std::string> lora_loaders;
  ASSIGN_OR_RETURN(std::string checkpoint, ReadModel(sampler, &lora_loaders));
  RETURN_IF_ERROR(RequireFrom(decode, "vae", "CheckpointLoaderSimple", " (the model's own VAE)"));
  bool img2img = false;
  RETURN_IF_ERROR(ReadLatent(sampler, checkpoint, &img2img));
  RETURN_IF_ERROR(ReadConditioning(sampler, checkpoint, lora_loaders));
  RETURN_IF_ERROR(CheckSdxlSizes());
  RETURN_IF_ERROR(ReadSampler(sampler, img2img));
  return checkpoint;
}

// The model chain: LoRA loaders back to the checkpoint, applied in the order ComfyUI applies them.
absl::StatusOr<std::string> EntryReader::ReadModel(const std::string& sampler, std::vector<std::string>* lora_loaders) {
  std::vector<std::string> chain;
  std::optional<std::string> adapter;  // the IP-Adapter's apply node, wherever it sits on the path
  std::string at = sampler;
  std::string from = r_.From(at, "model");
  while (r_.Class(from) != "CheckpointLoaderSimple") {
    if (r_.Class(from) == "IPAdapter" || r_.Class(from) == "IPAdapterAdvanced") {
      if (adapter) {
        return r_.Fail(at, "model", absl::StrCat("comes from ", r_.Node(from), ", a second IP-Adapter after ",
                                                 r_.Node(*adapter), "; spriteforge applies one"));
      }
      adapter = from;
    } else if (r_.Class(from) != "LoraLoader" && r_.Class(from) != "LoraLoaderModelOnly") {
      return r_.Fail(at, "model", absl::StrCat("comes from ", r_.Node(from), "; spriteforge needs LoRA loaders, an IP-Adapter and a CheckpointLoaderSimple here"));
    } else {
      chain.push_back(from);
    }
    at = from;
    from = r_.From(at, "model");
  }
  if (adapter) RETURN_IF_ERROR(ReadIpAdapter(*adapter));
  std::reverse(chain.begin(), chain.end());
  if (!chain.empty()) RETURN_IF_ERROR(b_.ClearLoras(r_.At(sampler, "model"), chain.size()));
  for (const std::string& lora : chain) {
    const double strength = r_.Number(lora, "strength_model");
    if (r_.Class(lora) == "LoraLoader") {
      // spriteforge merges a LoRA into the UNet and the text encoders at one strength.
      if (r_.Number(lora, "strength_clip") != strength) {
        return r_.Fail(lora, "strength_clip", absl::StrCat("must equal strength_model (", strength,
                                                           "): spriteforge applies one strength to the model and CLIP"));
      }
      lora_loaders->push_back(lora);
    }
    RETURN_IF_ERROR(b_.AddLoraByName(r_.At(lora, "lora_name"), r_.Text(lora, "lora_name")));
    RETURN_IF_ERROR(b_.SetLoraStrength(r_.At(lora, "strength_model"), strength));
  }
  return from;
}

std::string WithoutExtension(std::string name, std::initializer_list<const char*> extensions) {
  for (const char* ext : extensions) {
    if (absl::EndsWith(name, ext)) name.resize(name.size() - std::string(ext).size());
  }
  return name;
}

// IPAdapter / IPAdapterAdvanced = the manifest's `reference`. spriteforge's engine adds the
// adapter's attention at one scale on every step and in every layer, scaling its values
// (cubiq's "V only"), with no reference picture in the negative pass: anything else is refused.
absl::Status EntryReader::ReadIpAdapter(const std::string& apply) {
  if (r_.Number(apply, "start_at") != 0) {
    return r_.Fail(apply, "start_at", "must be 0: spriteforge applies the IP-Adapter on every step");
  }
  if (r_.Number(apply, "end_at") != 1) {
    return r_.Fail(apply, "end_at", "must be 1: spriteforge applies the IP-Adapter on every step");
  }
  const std::string weight_type = r_.Text(apply, "weight_type");
  if (weight_type != "linear" && weight_type != "standard") {
    return r_.Fail(apply, "weight_type", absl::StrCat("\"", weight_type, "\" is not a weight type spriteforge has (linear, "
                                                      "standard): it applies one weight in every layer"));
  }
  if (r_.Has(apply, "embeds_scaling") && r_.Text(apply, "embeds_scaling") != "V only") {
    return r_.Fail(apply, "embeds_scaling", absl::StrCat("\"", r_.Text(apply, "embeds_scaling"),
                                                         "\" is not supported: spriteforge scales the values only (V only)"));
  }
  // combine_embeds is not read: one reference picture is combined with nothing.
  if (r_.Has(apply, "image_negative")) {
    return r_.Fail(apply, "image_negative", "is not supported: spriteforge's negative pass has no reference picture");
  }
  if (r_.Has(apply, "attn_mask")) {
    return r_.Fail(apply, "attn_mask", "is not supported: spriteforge applies the IP-Adapter to the whole image");
  }
  RETURN_IF_ERROR(RequireFrom(apply, "image", "LoadImage", " (a reference picture file)"));
  const std::string loader = r_.From(apply, "ipadapter");
  // The encoder: CLIPVisionLoader's folder of that name, else image_encoder in --ip-adapter-dir.
  std::string encoder;
  FieldRef encoder_at = r_.At(loader, "ipadapter_file");
  if (r_.Has(apply, "clip_vision")) {
    const std::string vision = r_.From(apply, "clip_vision");
    encoder = WithoutExtension(r_.Text(vision, "clip_name"), {".safetensors", ".bin"});
    encoder_at = r_.At(vision, "clip_name");
  }
  RETURN_IF_ERROR(b_.SetIpAdapter(r_.At(loader, "ipadapter_file"),
                                  WithoutExtension(r_.Text(loader, "ipadapter_file"), {".safetensors", ".bin"}),
                                  encoder_at, encoder));
  RETURN_IF_ERROR(b_.SetIpAdapterScale(r_.At(apply, "weight"), r_.Number(apply, "weight")));
  const std::string image = r_.From(apply, "image");
  RETURN_IF_ERROR(b_.ClearReferenceImages(r_.At(apply, "image"), 1));
  return b_.AddReferenceImage(r_.At(image, "image"), r_.Text(image, "image"));
}

absl::StatusOr<std::string> EntryReader::ReadText(const std::string& encoder, const std::string& checkpoint,
                                                  const std::vector<std::string>& lora_loaders) {
  // The CLIP chain must pass the LoraLoaders the model passes: spriteforge applies each to both.
  std::vector<std::string> chain;
  std::string at = encoder;
  std::string from = r_.From(at, "clip");
  while (r_.Class(from) == "LoraLoader") {
    chain.push_back(from);
    at = from;
    from = r_.From(at, "clip");
  }
  std::reverse(chain.begin(), chain.end());
  if (from != checkpoint || chain != lora_loaders) {
    return r_.Fail(encoder, "clip", "must come from the sampler's checkpoint through the same LoraLoaders as its model");
  }
  if (r_.Class(encoder) == "CLIPTextEncode") return r_.Text(encoder, "text");
  // CLIPTextEncodeSDXL: spriteforge gives both encoders one text.
  if (r_.Text(encoder, "text_g") != r_.Text(encoder, "text_l")) {
    return r_.Fail(encoder, "text_l", "must equal text_g: spriteforge gives both text encoders one prompt");
  }
  sdxl_encoders_.push_back(encoder);
  return r_.Text(encoder, "text_g");
}

absl::Status EntryReader::ReadConditioning(const std::string& sampler, const std::string& checkpoint,
                                           const std::vector<std::string>& lora_loaders) {
  // ControlNetApplyAdvanced nodes wrap both conditionings: positive through output 0,
  // negative through output 1 of the same nodes, innermost first.
  std::vector<std::string> controls;
  std::string pos_at = sampler, neg_at = sampler;
  std::string pos = r_.From(sampler, "positive"), neg = r_.From(sampler, "negative");
  while (r_.Class(pos) == "ControlNetApplyAdvanced") {
    if (neg != pos || r_.Output(neg_at, "negative") != 1) {
      return r_.Fail(neg_at, "negative", absl::StrCat("must be output 1 of ", r_.Node(pos), ", as positive is its output 0"));
    }
    controls.push_back(pos);
    pos_at = neg_at = pos;
    pos = r_.From(pos_at, "positive");
    neg = r_.From(neg_at, "negative");
  }
  for (const auto& [at, input, node] : {std::tuple{pos_at, "positive", pos}, std::tuple{neg_at, "negative", neg}}) {
    if (r_.Class(node) != "CLIPTextEncode" && r_.Class(node) != "CLIPTextEncodeSDXL") {
      return r_.Fail(at, input, absl::StrCat("comes from ", r_.Node(node), "; spriteforge needs a CLIPTextEncode here"));
    }
  }
  ASSIGN_OR_RETURN(std::string prompt, ReadText(pos, checkpoint, lora_loaders));
  ASSIGN_OR_RETURN(std::string negative, ReadText(neg, checkpoint, lora_loaders));
  RETURN_IF_ERROR(b_.SetPrompt(r_.At(pos, r_.Class(pos) == "CLIPTextEncode" ? "text" : "text_g"), prompt));
  // ComfyUI always encodes the negative text, empty or not.
  RETURN_IF_ERROR(b_.SetNegative(r_.At(neg, r_.Class(neg) == "CLIPTextEncode" ? "text" : "text_g"), negative));
  std::reverse(controls.begin(), controls.end());
  if (!controls.empty()) RETURN_IF_ERROR(b_.ClearControls(r_.At(sampler, "positive"), controls.size()));
  for (const std::string& c : controls) {
    RETURN_IF_ERROR(RequireFrom(c, "control_net", "ControlNetLoader", ""));
    RETURN_IF_ERROR(RequireFrom(c, "image", "LoadImage", " (a control picture file)"));
    const std::string loader = r_.From(c, "control_net");
    std::string model = r_.Text(loader, "control_net_name");
    for (const char* ext : {".safetensors", ".pth"}) {
      if (absl::EndsWith(model, ext)) model.resize(model.size() - std::string(ext).size());
    }
    RETURN_IF_ERROR(b_.AddControlNet(r_.At(c, "control_net"), r_.At(loader, "control_net_name"), model));
    RETURN_IF_ERROR(b_.SetControlScale(r_.At(c, "strength"), r_.Number(c, "strength")));
    RETURN_IF_ERROR(b_.SetControlSpan(r_.At(c, "start_percent"), r_.Number(c, "start_percent"), r_.At(c, "end_percent"),
                                      r_.Number(c, "end_percent")));
    const std::string image = r_.From(c, "image");
    RETURN_IF_ERROR(b_.SetControlImage(r_.At(image, "image"), r_.Text(image, "image")));
  }
  return absl::OkStatus();
}

// CLIPTextEncodeSDXL's size conditioning: spriteforge conditions on the image's own size.
absl::Status EntryReader::CheckSdxlSizes() const {
  for (const std::string& e : sdxl_encoders_) {
    for (const auto& [field, want] : {std::pair{"width", width_}, std::pair{"height", height_},
                                      std::pair{"target_width", width_}, std::pair{"target_height", height_},
                                      std::pair{"crop_w", int64_t{0}}, std::pair{"crop_h", int64_t{0}}}) {
      if (r_.Int(e, field) != want) {
        return r_.Fail(e, field, absl::StrCat("must be ", want, ": spriteforge conditions on the image's own size (",
                                              width_, "x", height_, ", no crop)"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status EntryReader::ReadLatent(const std::string& sampler, const std::string& checkpoint, bool* img2img) {
  int64_t count = 1;
  std::string at = sampler, input = "latent_image";
  std::string from = r_.From(at, input);
  while (r_.Class(from) == "RepeatLatentBatch") {
    const int64_t amount = r_.Int(from, "amount");
    if (amount < 1) return r_.Fail(from, "amount", "must be at least 1");
    count *= amount;
    at = from;
    input = "samples";
    from = r_.From(at, input);
  }
  if (r_.Class(from) == "EmptyLatentImage") {
    width_ = r_.Int(from, "width");
    height_ = r_.Int(from, "height");
    RETURN_IF_ERROR(b_.SetWidth(r_.At(from, "width"), width_));
    RETURN_IF_ERROR(b_.SetHeight(r_.At(from, "height"), height_));
    count *= r_.Int(from, "batch_size");
    return b_.SetCount(r_.At(from, "batch_size"), count);
  }
  if (r_.Class(from) != "VAEEncode") {
    return r_.Fail(at, input, absl::StrCat("comes from ", r_.Node(from), "; spriteforge starts from an EmptyLatentImage or a VAEEncode"));
  }
  *img2img = true;
  RETURN_IF_ERROR(RequireFrom(from, "pixels", "LoadImage", " (the start image file)"));
  RETURN_IF_ERROR(RequireFrom(from, "vae", "CheckpointLoaderSimple", " (the model's own VAE)"));
  if (r_.From(from, "vae") != checkpoint) {
    return r_.Fail(from, "vae", "must come from the sampler's checkpoint");
  }
  const std::string image = r_.From(from, "pixels");
  // The image's size is the item's, as ComfyUI samples at the loaded image's size.
  const FieldRef image_at = r_.At(image, "image");
  if (files_) {
    auto file = files_(r_.Text(image, "image"), ManifestFileKind::kImage);
    if (!file.ok()) return r_.Fail(image, "image", std::string(file.status().message()));
    width_ = file->width;
    height_ = file->height;
    RETURN_IF_ERROR(b_.SetWidth(image_at, width_));
    RETURN_IF_ERROR(b_.SetHeight(image_at, height_));
  }
  RETURN_IF_ERROR(b_.SetInitImage(image_at, r_.Text(image, "image")));
  RETURN_IF_ERROR(b_.SetCount(at == sampler ? r_.At(sampler, "latent_image") : r_.At(at, "amount"), count));
  return absl::OkStatus();
}

absl::Status EntryReader::ReadSampler(const std::string& sampler, bool img2img) {
  const bool advanced = r_.Class(sampler) == "KSamplerAdvanced";
  const char* seed_field = advanced ? "noise_seed" : "seed";
  const double seed = r_.Input(sampler, seed_field).get<double>();
  if (seed < 0 || seed >= 18446744073709551616.0) return r_.Fail(sampler, seed_field, "must be 0..2^64-1");
  b_.SetSeed(r_.Input(sampler, seed_field).is_number_unsigned() ? r_.Input(sampler, seed_field).get<uint64_t>()
                                                                  : static_cast<uint64_t>(seed));
  const int64_t steps = r_.Int(sampler, "steps");
  RETURN_IF_ERROR(b_.SetSteps(r_.At(sampler, "steps"), steps));
  RETURN_IF_ERROR(b_.SetCfg(r_.At(sampler, "cfg"), r_.Number(sampler, "cfg")));
  const std::string sampler_name = r_.Text(sampler, "sampler_name"), scheduler = r_.Text(sampler, "scheduler");
  const NamePair* s = nullptr;
  for (const NamePair& p : kSamplers) s = sampler_name == p.comfy ? &p : s;
  if (s == nullptr) {
    return r_.Fail(sampler, "sampler_name", absl::StrCat("\"", sampler_name, "\" is not a sampler spriteforge has (",
                                                         absl::StrJoin(SamplerNames(), ", "), ")"));
  }
  const NamePair* sch = nullptr;
  for (const NamePair& p : kSchedulers) sch = scheduler == p.comfy ? &p : sch;
  if (sch == nullptr) {
    return r_.Fail(sampler, "scheduler", absl::StrCat("\"", scheduler, "\" is not a scheduler spriteforge has (",
                                                      absl::StrJoin(SchedulerNames(), ", "), ")"));
  }
  if (auto pair = CheckSamplerSchedule(s->sampler, sch->schedule); !pair.ok()) {
    return r_.Fail(sampler, "scheduler", std::string(pair.message()));
  }
  RETURN_IF_ERROR(b_.SetSampler(r_.At(sampler, "sampler_name"), SamplerName(s->sampler)));
  RETURN_IF_ERROR(b_.SetSchedule(r_.At(sampler, "scheduler"), ScheduleName(sch->schedule)));
  if (!advanced) {
    const double denoise = r_.Number(sampler, "denoise", 1.0);
    if (!img2img) {
      if (denoise != 1.0) return r_.Fail(sampler, "denoise", "must be 1 without a start image (VAEEncode)");
      return absl::OkStatus();
    }
    return b_.SetStrength(r_.At(sampler, "denoise"), denoise);
  }
  // KSamplerAdvanced: the whole schedule from its start step, noise added, none left over.
  if (r_.Text(sampler, "add_noise") != "enable") return r_.Fail(sampler, "add_noise", "must be enable");
  if (r_.Text(sampler, "return_with_leftover_noise") != "disable") {
    return r_.Fail(sampler, "return_with_leftover_noise", "must be disable: spriteforge samples to the end");
  }
  if (r_.Int(sampler, "end_at_step") < steps) {
    return r_.Fail(sampler, "end_at_step", absl::StrCat("must be at least steps (", steps, "): spriteforge samples to the end"));
  }
  const int64_t start = r_.Int(sampler, "start_at_step");
  if (!img2img) {
    if (start != 0) return r_.Fail(sampler, "start_at_step", "must be 0 without a start image (VAEEncode)");
    return absl::OkStatus();
  }
  if (start < 0 || start >= steps) return r_.Fail(sampler, "start_at_step", absl::StrCat("must be 0..", steps - 1));
  // Starting at step k of n is img2img at strength (n - k) / n.
  return b_.SetStrength(r_.At(sampler, "start_at_step"), static_cast<double>(steps - start) / steps);
}

std::string ModelOf(const std::string& ckpt_name) {
  for (const char* ext : {".safetensors", ".ckpt"}) {
    if (absl::EndsWith(ckpt_name, ext)) return ckpt_name.substr(0, ckpt_name.size() - std::string(ext).size());
  }
  return ckpt_name;
}

absl::StatusOr<std::pair<std::string, std::string>> SplitAssignment(const std::string& text, const char* flag,
                                                                    const char* form) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0) return absl::InvalidArgumentError(absl::StrCat(flag, " ", text, ": expected ", form));
  return std::pair{text.substr(0, eq), text.substr(eq + 1)};
}

std::vector<std::string> Names(const NamePair* begin, const NamePair* end) {
  std::vector<std::string> names;
  for (const NamePair* p = begin; p != end; ++p) names.push_back(p->comfy);
  return names;
}

}  // namespace

const std::vector<NodeSpec>& SupportedNodes() { return Specs(); }
std::vector<std::string> SamplerNames() { return Names(std::begin(kSamplers), std::end(kSamplers)); }
std::vector<std::string> SchedulerNames() { return Names(std::begin(kSchedulers), std::end(kSchedulers)); }

absl::StatusOr<json> ParseWorkflow(const std::string& text) {
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return absl::InvalidArgumentError("a workflow must be JSON");
  if (doc.is_object() && doc.contains("prompt") && doc["prompt"].is_object()) doc = doc["prompt"];
  if (!doc.is_object() || doc.empty()) {
    return absl::InvalidArgumentError("a workflow must be a JSON object of nodes (ComfyUI's \"Save (API)\" format)");
  }
  for (const auto& [id, node] : doc.items()) {
    if (!node.is_object() || !node.contains("class_type") || !node["class_type"].is_string()) {
      return absl::InvalidArgumentError(absl::StrCat("node ", id, ": expected {\"class_type\": ..., \"inputs\": {...}} "
                                                     "(ComfyUI's \"Save (API)\" format, not the UI's workflow file)"));
    }
    if (!node.contains("inputs")) doc[id]["inputs"] = json::object();
    if (!doc[id]["inputs"].is_object()) return absl::InvalidArgumentError(absl::StrCat("node ", id, ".inputs: expected an object"));
  }
  return doc;
}

bool IsWorkflow(const std::string& text) {
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos || text[first] != '{' || text.find("class_type") == std::string::npos) return false;
  return ParseWorkflow(text).ok();
}

absl::Status ApplySetting(json& workflow, const std::string& assignment) {
  ASSIGN_OR_RETURN(auto kv, SplitAssignment(assignment, "--set", "NODE.INPUT=VALUE"));
  const size_t dot = kv.first.rfind('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 == kv.first.size()) {
    return absl::InvalidArgumentError(absl::StrCat("--set ", assignment, ": expected NODE.INPUT=VALUE"));
  }
  const std::string node = kv.first.substr(0, dot), input = kv.first.substr(dot + 1);
  if (!workflow.contains(node)) return absl::InvalidArgumentError(absl::StrCat("--set ", assignment, ": the workflow has no node ", node));
  json value = json::parse(kv.second, nullptr, false);
  if (value.is_discarded() || value.is_object() || value.is_array()) value = kv.second;
  json& inputs = workflow[node]["inputs"];
  if (inputs.contains(input) && IsLink(inputs[input])) {
    return absl::InvalidArgumentError(absl::StrCat("--set ", assignment, ": node ", node, ".", input, " is a link, not a value"));
  }
  inputs[input] = std::move(value);
  return absl::OkStatus();
}

absl::Status ApplyModelMap(json& workflow, const std::string& mapping) {
  ASSIGN_OR_RETURN(auto kv, SplitAssignment(mapping, "--model-map", "CHECKPOINT=MODEL"));
  for (auto& [id, node] : workflow.items()) {
    if (node["class_type"] == "CheckpointLoaderSimple" && node["inputs"].value("ckpt_name", json()) == kv.first) {
      node["inputs"]["ckpt_name"] = kv.second;
    }
  }
  return absl::OkStatus();
}

absl::Status SetImageCount(json& workflow, int64_t count) {
  if (count < 1) return absl::InvalidArgumentError("--count: must be at least 1");
  int64_t next_id = 0;
  for (const std::string& id : SortedIds(workflow)) {
    int64_t n = 0;
    if (absl::SimpleAtoi(id, &n)) next_id = std::max(next_id, n + 1);
  }
  std::vector<std::pair<std::string, json>> added;
  for (auto& [id, node] : workflow.items()) {
    const json& type = node["class_type"];
    if (type == "EmptyLatentImage") node["inputs"]["batch_size"] = count;
    if (type == "RepeatLatentBatch") node["inputs"]["amount"] = 1;  // the count is set once, below or above
    if (type != "KSampler" && type != "KSamplerAdvanced") continue;
    json& latent = node["inputs"]["latent_image"];
    if (!IsLink(latent) || !workflow.contains(LinkNode(latent))) continue;
    std::string from = LinkNode(latent);
    while (workflow[from]["class_type"] == "RepeatLatentBatch" && IsLink(workflow[from]["inputs"]["samples"])) {
      from = LinkNode(workflow[from]["inputs"]["samples"]);
      if (!workflow.contains(from)) break;
    }
    if (!workflow.contains(from) || workflow[from]["class_type"] != "VAEEncode") continue;
    const std::string repeat = std::to_string(next_id++);
    added.push_back({repeat, {{"class_type", "RepeatLatentBatch"}, {"inputs", {{"samples", latent}, {"amount", count}}}}});
    latent = json::array({repeat, 0});
  }
  for (auto& [id, node] : added) workflow[id] = std::move(node);
  return absl::OkStatus();
}

std::vector<std::string> SaveImageNodes(const json& workflow) {
  std::vector<std::string> saves;
  for (const std::string& id : SortedIds(workflow)) {
    if (workflow[id].value("class_type", "") == "SaveImage") saves.push_back(id);
  }
  return saves;
}

absl::StatusOr<Manifest> ImportWorkflow(const json& workflow, const std::string& origin, const ManifestLimits& limits,
                                        const FileResolver& files) {
  Reader r(workflow, origin);
  RETURN_IF_ERROR(r.Validate());
  ManifestBuilder job(limits, origin);
  std::optional<std::string> model;
  for (const std::string& id : SortedIds(workflow)) {
    if (r.Class(id) != "SaveImage") continue;
    EntryBuilder entry(limits, files, origin);
    EntryReader reader(r, entry, files);
    ASSIGN_OR_RETURN(std::string checkpoint, reader.Read(id));
    const std::string name = ModelOf(r.Text(checkpoint, "ckpt_name"));
    if (!model) {
      RETURN_IF_ERROR(job.SetModel(r.At(checkpoint, "ckpt_name"), name));
      RETURN_IF_ERROR(job.SetName(r.At(id, "filename_prefix"), r.Text(id, "filename_prefix")));
      model = name;
    } else if (name != *model) {
      return FieldErrors(origin).At(r.At(checkpoint, "ckpt_name"),
                                    absl::StrCat("is another model than ", *model, ": one model per job"));
    }
    RETURN_IF_ERROR(job.AddEntry({r.Node(id)}, {r.Node(id)}, entry));
  }
  if (!model) return FieldErrors(origin).At({"workflow"}, "has no SaveImage node: nothing would be saved");
  return job.Build();
}

absl::StatusOr<Manifest> ImportWorkflowText(const std::string& text, const std::string& origin,
                                            const ManifestLimits& limits, const FileResolver& files) {
  auto workflow = ParseWorkflow(text);
  if (!workflow.ok()) return FieldErrors(origin).At({"workflow"}, std::string(workflow.status().message()));
  return ImportWorkflow(*workflow, origin, limits, files);
}

}  // namespace spriteforge::comfyui
