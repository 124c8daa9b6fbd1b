// Fuzz target: job manifests (YAML, and JSON through the same parser) as clients submit
// them. A manifest that parses must respect the limits it was parsed with.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  spriteforge::ManifestLimits limits;
  limits.max_images_per_job = 1000;  // keeps one input's cost bounded
  uint64_t next = 1;
  auto m = spriteforge::ParseManifest(text, "fuzz.yaml", [&] { return next++; }, limits);
  if (!m.ok()) return 0;
  if (m->images.empty() || static_cast<int>(m->images.size()) > limits.max_images_per_job) std::abort();
  if (!spriteforge::ModelNameProblem(m->model).empty()) std::abort();
  for (const auto& image : m->images) {
    const auto& p = image.sampling;
    if (p.width() < limits.min_size || p.width() > limits.max_size || p.height() < limits.min_size ||
        p.height() > limits.max_size || p.steps() < 1 || p.steps() > limits.max_steps) {
      std::abort();
    }
  }
  return 0;
}
