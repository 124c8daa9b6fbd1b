// Memory the system can still hand out, as Linux reports it in /proc/meminfo. On the CPU and
// on unified-memory GPUs (DGX Spark's GB10, where CPU and GPU share one pool) this, not the
// driver's free count, is what the engine may still allocate without pushing others to swap.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace spriteforge::engine {

// Available bytes from meminfo text: MemAvailable when the kernel reports it (Linux 3.14+),
// else MemFree + Buffers + Cached, the estimate older kernels leave to user space. Every
// line must read "Name: value" or "Name: value kB", so a wrong file fails instead of being
// half-read; errors name `origin` and the line.
absl::StatusOr<uint64_t> AvailableBytesFromMeminfo(std::string_view text,
                                                   std::string_view origin = "meminfo");

// The same, read from a file (default: this machine's).
absl::StatusOr<uint64_t> ReadAvailableBytes(const std::string& path = "/proc/meminfo");

}  // namespace spriteforge::engine
