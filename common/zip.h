// A zip archive of stored (uncompressed) files, for downloads of results that are already
// compressed (PNGs) or small (JSON sidecars): no deflate, so writing one costs a copy and
// a CRC. Without Zip64: at most 65535 files and 4 GiB in all.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace spriteforge {

class ZipWriter {
 public:
  // Appends a file; `name` uses '/' between folders. Past the format's limits, an error.
  absl::Status Add(const std::string& name, std::string_view bytes);
  // The archive: the files added, their central directory and its end record.
  std::string Finish();
  size_t size() const { return out_.size(); }

 private:
  std::string out_;
  std::string directory_;
  uint16_t entries_ = 0;
};

}  // namespace spriteforge
