#include "coordinator/core/core_clock.h"

#include <cstdio>
#include <mutex>
#include <random>

#include "absl/strings/str_cat.h"

namespace spriteforge::coordinator {

std::string RandomId(const char* prefix) {
  static std::mutex mu;
  static std::mt19937_64 rng(std::random_device{}());
  std::lock_guard<std::mutex> lock(mu);
  char buf[17];
  snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return absl::StrCat(prefix, std::string(buf, 12));
}

const char* ReasonName(::spriteforge::v1::FailureReason r) {
  namespace v1 = ::spriteforge::v1;
  switch (r) {
    case v1::FAILURE_OUT_OF_MEMORY: return "out_of_memory";
    case v1::FAILURE_INVALID_REQUEST: return "invalid_request";
    case v1::FAILURE_MODEL_UNAVAILABLE: return "model_unavailable";
    case v1::FAILURE_CANCELLED: return "cancelled";
    case v1::FAILURE_WORKER_LOST: return "worker_lost";
    case v1::FAILURE_STORAGE: return "storage";
    case v1::FAILURE_INVALID_RESULT: return "invalid_result";
    default: return "internal";
  }
}

}  // namespace spriteforge::coordinator
