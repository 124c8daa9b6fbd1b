// Clocks and identifiers the coordinator's parts share.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "spriteforge/v1/spriteforge.pb.h"

namespace spriteforge::coordinator {

// Wall clock, for what is stored and shown (leases, job times).
inline int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch()).count();
}

// Monotonic clock, for intervals that must not jump with the wall clock.
inline int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch()).count();
}

// `prefix` and 12 random hex digits: job-, worker-, batch-.
std::string RandomId(const char* prefix);

// The failure reason's label in /metrics.
const char* ReasonName(::spriteforge::v1::FailureReason reason);

}  // namespace spriteforge::coordinator
