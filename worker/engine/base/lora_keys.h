// The tensor names of a LoRA file, grouped per layer and resolved to the model's own
// module names. Plain C++ (no torch): what a name means is decided here, the arithmetic
// is in src/lora.h.
//
// Accepted namings, as SDXL LoRAs ship them:
//   kohya/sd-scripts  lora_unet_<original SGM module path, '.' -> '_'>  (input_blocks_4_1_...)
//                     lora_unet_<diffusers module path, '.' -> '_'>     (down_blocks_1_attentions_0_...)
//                     lora_te1_<CLIP-L module>, lora_te2_<bigG module>  (Hugging Face names)
//                     each with .lora_down.weight [rank, in], .lora_up.weight [out, rank], .alpha
//   diffusers/PEFT    unet.<module>, text_encoder.<module>, text_encoder_2.<module>
//                     each with .lora_A.weight [rank, in], .lora_B.weight [out, rank], optional .alpha
// Anything else is an error that names the tensor, never skipped.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/engine/base/key_mapping.h"
#include "worker/engine/base/model_config.h"

namespace spriteforge::engine {

// The layers of the model a LoRA may name: per component, module name -> Linear or not
// (a convolution, which LoRAs of the LoCon/LyCORIS kind change and this engine refuses).
class LoraModuleIndex {
 public:
  void Add(Component component, const std::string& module, bool linear);
  // By dotted diffusers name; nullptr if the component has no such layer.
  const bool* Find(Component component, const std::string& module, std::string* dotted = nullptr) const;
  // By the same name with every '.' written as '_' (kohya's spelling).
  const bool* FindUnderscored(Component component, const std::string& name, std::string* dotted) const;

 private:
  std::map<Component, std::map<std::string, bool>> modules_;
  std::map<Component, std::map<std::string, std::string>> underscored_;  // -> dotted
};

struct LoraLayerKeys {
  Component component;
  std::string module;  // diffusers module name in the component, e.g. "down_blocks.1.attentions.0.proj_in"
  std::string down;    // tensor name of the [rank, in] factor
  std::string up;      // tensor name of the [out, rank] factor
  std::string alpha;   // tensor name of alpha; empty: alpha = rank (scale 1)
};

// Groups `names` (every tensor of the file; "__metadata__" excluded) into layers. Errors
// name `file` and the first offending tensor: unknown names, convolution layers, LyCORIS
// kinds (LoHa, LoKr, DoRA), a layer missing one of its factors.
absl::StatusOr<std::vector<LoraLayerKeys>> ResolveLoraKeys(const std::vector<std::string>& names,
                                                           const LoraModuleIndex& modules,
                                                           const SdxlConfig& config,
                                                           const std::string& file);

}  // namespace spriteforge::engine
