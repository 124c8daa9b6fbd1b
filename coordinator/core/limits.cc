#include "coordinator/core/limits.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace spriteforge::coordinator {

absl::Status RateLimiter::Allow(const std::string& client, int per_minute, int64_t now_ms, const char* limit_name) {
  if (per_minute <= 0) return absl::OkStatus();
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, fresh] = buckets_.try_emplace(client);
  Bucket& b = it->second;
  if (fresh) b = {static_cast<double>(per_minute), now_ms};
  const double rate = per_minute / 60000.0;  // tokens per ms
  b.tokens = std::min<double>(per_minute, b.tokens + (now_ms - b.last_ms) * rate);
  b.last_ms = now_ms;
  if (b.tokens >= 1) {
    b.tokens -= 1;
    return absl::OkStatus();
  }
  const double wait_s = std::ceil((1 - b.tokens) / rate / 1000.0);
  return absl::ResourceExhaustedError(absl::StrCat(limit_name, " limit of ", per_minute, " reached for '",
                                                   client, "'; retry in ", wait_s, " s"));
}

}  // namespace spriteforge::coordinator
