#include "worker/engine/base/lora_keys.h"

#include <cctype>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/status_macros.h"

namespace spriteforge::engine {
namespace {

enum class Part { kDown, kUp, kAlpha };

bool Consume(std::string& s, absl::string_view prefix) {
  if (!absl::StartsWith(s, prefix)) return false;
  s.erase(0, prefix.size());
  return true;
}

bool ConsumeSuffix(std::string& s, absl::string_view suffix) {
  if (!absl::EndsWith(s, suffix)) return false;
  s.resize(s.size() - suffix.size());
  return true;
}

std::string Underscored(const std::string& dotted) { return absl::StrReplaceAll(dotted, {{".", "_"}}); }

// Leading "<digits>_" (or "<digits>" at the end) of s: the number, consumed.
bool TakeNumber(std::string& s, std::string* number) {
  size_t n = 0;
  while (n < s.size() && std::isdigit(static_cast<unsigned char>(s[n]))) ++n;
  if (n == 0 || (n < s.size() && s[n] != '_')) return false;
  *number = s.substr(0, n);
  s.erase(0, n < s.size() ? n + 1 : n);
  return true;
}

// "_<digits>" between words becomes ".<digits>.": SGM paths put a dot around every index
// ("transformer_blocks_0_attn1_to_q" -> "transformer_blocks.0.attn1_to_q"); the words
// themselves stay as they are, the lookup compares underscored names.
std::string IndicesDotted(const std::string& tail) {
  std::string out;
  for (size_t i = 0; i < tail.size(); ++i) {
    if (tail[i] == '_' && i + 1 < tail.size() && std::isdigit(static_cast<unsigned char>(tail[i + 1]))) {
      size_t end = i + 1;
      while (end < tail.size() && std::isdigit(static_cast<unsigned char>(tail[end]))) ++end;
      if (end == tail.size() || tail[end] == '_') {
        out += '.';
        out.append(tail, i + 1, end - i - 1);
        if (end < tail.size()) out += '.';
        i = end;
        continue;
      }
    }
    out += tail[i];
  }
  return out;
}

// kohya's SGM spelling of a UNet layer ("input_blocks_4_1_transformer_blocks_0_attn1_to_q")
// as the underscored diffusers name, through the checkpoint key mapping; "" if it is none.
std::string SgmToDiffusers(std::string rest, const SdxlConfig& config) {
  std::string prefix, a, b;
  for (const char* block : {"input_blocks_", "output_blocks_"}) {
    if (Consume(rest, block)) {
      if (!TakeNumber(rest, &a) || !TakeNumber(rest, &b)) return "";
      prefix = absl::StrCat(std::string(block, std::strlen(block) - 1), ".", a, ".", b, ".");
    }
  }
  if (prefix.empty() && Consume(rest, "middle_block_")) {
    if (!TakeNumber(rest, &a)) return "";
    prefix = absl::StrCat("middle_block.", a, ".");
  }
  const std::string tail = rest.empty() ? "" : IndicesDotted(rest) + ".";
  std::vector<MappedKey> mapped = MapOriginalKey(absl::StrCat("model.diffusion_model.", prefix, tail, "weight"), config);
  if (mapped.size() != 1 || mapped[0].component != Component::kUNet) return "";
  std::string name = mapped[0].name;
  if (!ConsumeSuffix(name, ".weight")) return "";
  return Underscored(name);
}

bool IsLycorisSuffix(const std::string& suffix) {
  for (const char* kind : {"hada_", "lokr_", "dora_scale", "lora_mid", "lora_magnitude_vector", "diff"}) {
    if (absl::StartsWith(suffix, kind)) return true;
  }
  return false;
}

struct Parsed {
  Component component;
  std::string module;  // dotted, resolved
  Part part;
};

absl::StatusOr<Parsed> ParseName(const std::string& name, const LoraModuleIndex& modules,
                                 const SdxlConfig& config, const std::string& file) {
  auto error = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": tensor '", name, "': ", why));
  };
  std::string stem = name, suffix;
  Component component = Component::kUNet;
  bool kohya = false;
  if (absl::StartsWith(name, "lora_unet_") || absl::StartsWith(name, "lora_te1_") || absl::StartsWith(name, "lora_te2_")) {
    kohya = true;
    const size_t dot = name.find('.');
    if (dot == std::string::npos) return error("no .lora_down/.lora_up/.alpha suffix");
    stem = name.substr(0, dot);
    suffix = name.substr(dot + 1);
    if (Consume(stem, "lora_unet_")) component = Component::kUNet;
    else if (Consume(stem, "lora_te1_")) component = Component::kTextEncoder;
    else if (Consume(stem, "lora_te2_")) component = Component::kTextEncoder2;
  } else if (Consume(stem, "unet.")) {
    component = Component::kUNet;
  } else if (Consume(stem, "text_encoder_2.")) {
    component = Component::kTextEncoder2;
  } else if (Consume(stem, "text_encoder.")) {
    component = Component::kTextEncoder;
  } else {
    return error("not a LoRA tensor of an SDXL model (expected lora_unet_*, lora_te1_*, lora_te2_*, unet.*, "
                 "text_encoder.* or text_encoder_2.*)");
  }

  Part part;
  if (kohya) {
    if (suffix == "lora_down.weight") part = Part::kDown;
    else if (suffix == "lora_up.weight") part = Part::kUp;
    else if (suffix == "alpha") part = Part::kAlpha;
    else if (IsLycorisSuffix(suffix)) return error("LyCORIS layers (LoHa, LoKr, DoRA) are not supported");
    else return error("unknown LoRA tensor kind '" + suffix + "'");
  } else {
    if (ConsumeSuffix(stem, ".lora_A.weight")) part = Part::kDown;
    else if (ConsumeSuffix(stem, ".lora_B.weight")) part = Part::kUp;
    else if (ConsumeSuffix(stem, ".alpha")) part = Part::kAlpha;
    else if (absl::StrContains(stem, "lora_magnitude_vector")) return error("DoRA layers are not supported");
    else return error("unknown LoRA tensor kind (expected .lora_A.weight, .lora_B.weight or .alpha)");
  }

  std::string dotted;
  const bool* linear = kohya ? modules.FindUnderscored(component, stem, &dotted) : modules.Find(component, stem, &dotted);
  if (!linear && kohya && component == Component::kUNet) {
    const std::string converted = SgmToDiffusers(stem, config);
    if (!converted.empty()) linear = modules.FindUnderscored(component, converted, &dotted);
  }
  if (!linear) return error(absl::StrCat("names no layer of the model's ", ComponentFolder(component)));
  if (!*linear) {
    return error(absl::StrCat("changes the convolution '", dotted,
                              "' (a LoCon/LyCORIS LoRA): only Linear layers are supported"));
  }
  return Parsed{component, dotted, part};
}

}  // namespace

void LoraModuleIndex::Add(Component component, const std::string& module, bool linear) {
  modules_[component][module] = linear;
  underscored_[component][Underscored(module)] = module;
}

const bool* LoraModuleIndex::Find(Component component, const std::string& module, std::string* dotted) const {
  auto c = modules_.find(component);
  if (c == modules_.end()) return nullptr;
  auto it = c->second.find(module);
  if (it == c->second.end()) return nullptr;
  if (dotted) *dotted = it->first;
  return &it->second;
}

const bool* LoraModuleIndex::FindUnderscored(Component component, const std::string& name, std::string* dotted) const {
  auto c = underscored_.find(component);
  if (c == underscored_.end()) return nullptr;
  auto it = c->second.find(name);
  if (it == c->second.end()) return nullptr;
  return Find(component, it->second, dotted);
}

absl::StatusOr<std::vector<LoraLayerKeys>> ResolveLoraKeys(const std::vector<std::string>& names,
                                                           const LoraModuleIndex& modules,
                                                           const SdxlConfig& config,
                                                           const std::string& file) {
  std::map<std::pair<Component, std::string>, LoraLayerKeys> layers;
  for (const std::string& name : names) {
    ASSIGN_OR_RETURN(auto parsed, ParseName(name, modules, config, file));
    LoraLayerKeys& layer = layers[{parsed.component, parsed.module}];
    layer.component = parsed.component;
    layer.module = parsed.module;
    std::string& slot = parsed.part == Part::kDown ? layer.down : parsed.part == Part::kUp ? layer.up : layer.alpha;
    if (!slot.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(file, ": tensors '", slot, "' and '", name, "' both name layer '",
                                                     parsed.module, "' of ", ComponentFolder(parsed.component)));
    }
    slot = name;
  }
  std::vector<LoraLayerKeys> out;
  for (auto& [key, layer] : layers) {
    if (layer.down.empty() || layer.up.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(file, ": layer '", layer.module, "' of ", ComponentFolder(layer.component),
                                                     " lacks its ", layer.down.empty() ? "down (lora_down/lora_A)" : "up (lora_up/lora_B)",
                                                     " factor"));
    }
    out.push_back(std::move(layer));
  }
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat(file, ": no LoRA layers in the file"));
  return out;
}

}  // namespace spriteforge::engine
