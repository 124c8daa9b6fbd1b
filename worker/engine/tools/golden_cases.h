// The golden tiny model's end-to-end cases (cases.json) as engine requests, shared by
// spriteforge-golden-check and the engine's tests.
#pragma once

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "spriteforge/engine/engine.h"

namespace spriteforge::engine {

// Keyed by case name ("e2e.euler_cfg", ...). The reference names sampler and schedule
// together ("dpmpp_2m_karras"); the requests carry them apart.
absl::StatusOr<std::map<std::string, BatchRequest>> LoadGoldenCases(const std::string& golden_dir);

// The workflow cases of tiny-sdxl-workflows/cases.json: "lora.euler" with the LoRA file
// `lora_file` of that folder (the case names two formats of one LoRA) at the case's
// strength, and "img2img.euler" with init.png read into every image's init_image.
absl::StatusOr<std::map<std::string, BatchRequest>> LoadWorkflowCases(const std::string& workflows_dir,
                                                                      const std::string& lora_file);

// The cases of tiny-sdxl-controls/cases.json: "controls" become BatchRequest::controlnets
// (the folder's ControlNet, scale, start, end) with each image's control PNG, and
// "ip_adapter" becomes BatchRequest::ip_adapter with reference.png as every image's
// reference image.
absl::StatusOr<std::map<std::string, BatchRequest>> LoadControlCases(const std::string& controls_dir);

}  // namespace spriteforge::engine
