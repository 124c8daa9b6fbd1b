// Access to the golden tiny-sdxl folder for tests: where it is, and its reference tensors.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "worker/engine/base/safetensors.h"
#include "worker/engine/base/schedule.h"

namespace spriteforge::engine::testing {

// The folder named by SPRITEFORGE_GOLDEN, or "" if unset or missing.
std::string GoldenDir();

// In a test body: skips (or fails, when SPRITEFORGE_REQUIRE_GOLDEN=1) without the folder.
#define SPRITEFORGE_REQUIRE_GOLDEN_DIR()                                                   \
  do {                                                                                      \
    if (::spriteforge::engine::testing::GoldenDir().empty()) {                              \
      if (::spriteforge::engine::testing::GoldenRequired())                                 \
        FAIL() << "golden folder missing: set SPRITEFORGE_GOLDEN to shared/golden/tiny-sdxl"; \
      GTEST_SKIP() << "golden folder missing: set SPRITEFORGE_GOLDEN to shared/golden/tiny-sdxl"; \
    }                                                                                       \
  } while (0)

bool GoldenRequired();

// tiny-sdxl-workflows beside the golden folder (LoRA and img2img cases).
std::string WorkflowsDir();

// vectors.safetensors of the workflows folder, opened once per process.
const SafetensorsFile& WorkflowVectors();

// tiny-sdxl-controls (ControlNet and IP-Adapter cases): beside the golden folder when it is
// there, else the copy kept in the source tree (tests/golden). "" without the golden folder.
std::string ControlsDir();
// Its vectors.safetensors, opened once per process.
const SafetensorsFile& ControlVectors();

// Writes a safetensors file of float32 tensors (for LoRA files made by tests).
struct F32Tensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> values;
};
void WriteSafetensors(const std::string& path, const std::vector<F32Tensor>& tensors);
// Every tensor of a file as float32 (F16/F32 only), in file order.
std::vector<F32Tensor> ReadSafetensors(const std::string& path);

// The reference's scheduler cases: vectors are named sched.<name>.<steps>.*.
struct SchedulerCase {
  const char* name;
  SamplerKind sampler;
  ScheduleKind schedule;
};
inline constexpr SchedulerCase kSchedulerCases[] = {
    {"euler", SamplerKind::kEuler, ScheduleKind::kNormal},
    {"euler_trailing", SamplerKind::kEuler, ScheduleKind::kTrailing},
    {"euler_karras", SamplerKind::kEuler, ScheduleKind::kKarras},
    {"euler_a", SamplerKind::kEulerAncestral, ScheduleKind::kNormal},
    {"dpmpp_2m", SamplerKind::kDpmpp2m, ScheduleKind::kNormal},
    {"dpmpp_2m_karras", SamplerKind::kDpmpp2m, ScheduleKind::kKarras},
};

// vectors.safetensors of the golden folder, opened once per process.
const SafetensorsFile& GoldenVectors();

}  // namespace spriteforge::engine::testing
