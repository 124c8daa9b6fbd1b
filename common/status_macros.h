// Status propagation in one line, so a function reads as its successful path:
//   RETURN_IF_ERROR(WriteFile(path, bytes));           // returns the error, if any
//   ASSIGN_OR_RETURN(auto image, DecodePng(bytes));    // image is the value, or returns
// Both accept absl::Status and absl::StatusOr<T>; the error keeps its code and message.
#pragma once

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace spriteforge::status_internal {

inline absl::Status AsStatus(absl::Status status) { return status; }
template <typename T>
absl::Status AsStatus(const absl::StatusOr<T>& value) {
  return value.status();
}

}  // namespace spriteforge::status_internal

#define SPRITEFORGE_STATUS_CONCAT_(a, b) a##b
#define SPRITEFORGE_STATUS_CONCAT(a, b) SPRITEFORGE_STATUS_CONCAT_(a, b)

#define RETURN_IF_ERROR(expr)                                                                  \
  do {                                                                                         \
    if (absl::Status status_ = ::spriteforge::status_internal::AsStatus(expr); !status_.ok()) \
      return status_;                                                                          \
  } while (0)

#define ASSIGN_OR_RETURN(lhs, expr) \
  SPRITEFORGE_ASSIGN_OR_RETURN_(SPRITEFORGE_STATUS_CONCAT(status_or_, __LINE__), lhs, expr)
#define SPRITEFORGE_ASSIGN_OR_RETURN_(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return tmp.status();                 \
  lhs = std::move(tmp).value()
