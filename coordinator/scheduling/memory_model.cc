#include "scheduling/memory_model.h"

#include <algorithm>

namespace spriteforge::coordinator {

uint64_t MemoryModel::PredictPeak(int batch, int width, int height) const {
  const double pixels = static_cast<double>(width) * height / (1024.0 * 1024.0);
  double fixed = static_cast<double>(prior_.fixed_bytes);
  double per_image = prior_.per_image_bytes_at_1mp * pixels;
  auto it = fits_.find({width, height});
  if (it != fits_.end() && !it->second.peak_by_batch.empty()) {
    const auto& seen = it->second.peak_by_batch;
    if (seen.size() >= 2) {
      // Line through the smallest and largest batch observed.
      auto lo = *seen.begin(), hi = *seen.rbegin();
      per_image = std::max(0.0, (static_cast<double>(hi.second) - lo.second) / (hi.first - lo.first));
      fixed = static_cast<double>(lo.second) - per_image * lo.first;
    } else {
      // One observation: keep the prior's slope, move the intercept to the measurement.
      auto only = *seen.begin();
      fixed = static_cast<double>(only.second) - per_image * only.first;
    }
  }
  return static_cast<uint64_t>(std::max(0.0, fixed + per_image * batch));
}

int MemoryModel::MaxBatch(int width, int height, uint64_t budget_bytes, int hard_cap) const {
  int limit = hard_cap;
  if (int cap = CapFor(width, height); cap > 0) limit = std::min(limit, cap);
  int best = 0;
  for (int b = 1; b <= limit; ++b) {
    if (PredictPeak(b, width, height) > budget_bytes) break;
    best = b;
  }
  return best;
}

void MemoryModel::Observe(int batch, int width, int height, uint64_t peak_bytes) {
  uint64_t& slot = fits_[{width, height}].peak_by_batch[batch];
  slot = std::max(slot, peak_bytes);
}

void MemoryModel::OnOutOfMemory(int batch, int width, int height) {
  Fit& fit = fits_[{width, height}];
  const int lowered = std::max(1, batch / 2);
  fit.cap = fit.cap == 0 ? lowered : std::min(fit.cap, lowered);
}

int MemoryModel::CapFor(int width, int height) const {
  auto it = fits_.find({width, height});
  return it == fits_.end() ? 0 : it->second.cap;
}

}  // namespace spriteforge::coordinator
