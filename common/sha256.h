// SHA-256 content hashes (OpenSSL), the names under which uploaded files are kept.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace spriteforge {

// Incremental: feed chunks as they arrive, then read the digest once.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(const void* data, size_t size);
  void Update(const std::string& data) { Update(data.data(), data.size()); }
  std::string HexDigest();  // 64 lower-case hex digits

 private:
  struct State;
  std::unique_ptr<State> state_;
};

std::string Sha256Hex(const std::string& bytes);
absl::StatusOr<std::string> Sha256OfFile(const std::string& path);
// 64 lower-case hex digits: safe as a file name.
bool IsSha256Hex(const std::string& text);

}  // namespace spriteforge
