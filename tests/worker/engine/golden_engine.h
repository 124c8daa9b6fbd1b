// The golden tiny model through the public engine API, for the api_* tests: one loaded
// engine per checkpoint layout per process, and the checks against the reference images.
#pragma once

#include <string>

#include "spriteforge/engine/engine.h"
#include "worker/engine/base/safetensors.h"

namespace spriteforge::engine::testing {

// "tiny-sdxl.safetensors": the single file, with the architecture and tokenizer from the
// folders beside it; "diffusers": the diffusers folder alone. Loaded on first use; a
// model that does not load throws, which fails the calling test with the reason.
Engine& TinyEngine(const std::string& layout = "tiny-sdxl.safetensors");

// `result` against the reference: the floats `<name>.images` of `vectors` within
// `tolerance`, and the PNGs `<dir>/<name>_<i>.png` within one 8-bit level.
void ExpectReferenceImages(const SafetensorsFile& vectors, const std::string& dir, const std::string& name,
                           const BatchResult& result, double tolerance);

// The largest difference of one float channel between two images of the same size.
double MaxDifference(const Image& a, const Image& b);

}  // namespace spriteforge::engine::testing
