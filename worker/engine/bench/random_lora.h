// A LoRA of random values in diffusers/PEFT naming for SDXL base's UNet: every Linear of
// its transformer blocks (attention projections, feed-forward, proj_in/proj_out), the
// layers few-step LoRAs such as SDXL-Lightning train. Speed does not depend on the values,
// so the benchmark measures merging and sampling with it as with a downloaded file.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace spriteforge::bench {

// Writes the file (fp16 factors, up/down initialised small) and returns its size in bytes.
absl::StatusOr<uint64_t> WriteRandomSdxlLora(const std::string& path, int rank, uint64_t seed);

// IEEE half-precision bits of `f` (rounded to nearest; values below half's normal range flush to zero).
uint16_t ToHalf(float f);

}  // namespace spriteforge::bench
