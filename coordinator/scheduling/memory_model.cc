#include "coordinator/scheduling/memory_model.h"

#include <algorithm>
#include <cstdint>

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
  const double peak = std::max(0.0, fixed + per_image * batch);
  // 2^64 as a double: converting anything at or above it to uint64_t is undefined.
  return peak >= 18446744073709551616.0 ? UINT64_MAX : static_cast<uint64_t>(peak);
}

int MemoryModel::MaxBatch(int width, int height, uint64_t budget_bytes, int hard_cap,
                          uint64_t extra_per_image_at_1mp) const {
  const double extra = extra_per_image_at_1mp * (static_cast<double>(width) * height / (1024.0 * 1024.0));
  auto fits_budget = [&](int64_t b) {
    const uint64_t peak = PredictPeak(static_cast<int>(b), width, height);
    if (extra <= 0) return peak <= budget_bytes;
    return static_cast<double>(peak) + extra * static_cast<double>(b) <= static_cast<double>(budget_bytes);
  };
  int limit = hard_cap;
  if (int cap = CapFor(width, height); cap > 0) limit = std::min(limit, cap);
  // The predicted peak never falls as b grows, so the answer is found by bisection: a few
  // predictions whatever the cap (a loop up to a worker's cap could run 2^31 times).
  if (limit < 1 || !fits_budget(1)) return 0;
  // 64-bit bounds: one past a cap of INT_MAX does not fit an int.
  int64_t fits = 1, too_big = static_cast<int64_t>(limit) + 1;  // known to fit; known not to (or past the cap)
  while (too_big - fits > 1) {
    const int64_t mid = fits + (too_big - fits) / 2;
    (fits_budget(mid) ? fits : too_big) = mid;
  }
  return static_cast<int>(fits);
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
