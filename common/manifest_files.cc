#include "common/manifest_files.h"

#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/png.h"
#include "common/sha256.h"
#include "common/status_macros.h"

namespace spriteforge {

const char* KindName(ManifestFileKind kind) {
  switch (kind) {
    case ManifestFileKind::kLora: return "LoRA";
    case ManifestFileKind::kImage: return "image";
    case ManifestFileKind::kWeights: return "model";
    case ManifestFileKind::kConfig: return "JSON file";
  }
  return "file";
}

std::string SafetensorsStartProblem(const std::string& start) {
  // The header's length (little-endian u64), then the JSON header itself.
  if (start.size() < 9 || start[8] != '{') return "not a .safetensors file";
  return "";
}

absl::StatusOr<ManifestFile> DescribeImageBytes(const std::string& bytes) {
  auto png = DecodePng(bytes);
  if (!png.ok()) return absl::InvalidArgumentError(absl::StrCat("not a readable PNG: ", png.status().message()));
  if (png->channels != 3) {
    return absl::InvalidArgumentError(absl::StrCat("expected an RGB image, got ", png->channels, " channels"));
  }
  ManifestFile file;
  file.size = bytes.size();
  file.width = png->width;
  file.height = png->height;
  file.sha256 = Sha256Hex(bytes);
  return file;
}

absl::StatusOr<ManifestFile> DescribeManifestFile(const std::string& path, ManifestFileKind kind,
                                                  const UploadLimits& limits) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return absl::NotFoundError(absl::StrCat(path, ": no such file"));
  ManifestFile file;
  file.size = std::filesystem::file_size(path, ec);
  if (ec) return absl::NotFoundError(absl::StrCat(path, ": ", ec.message()));
  if (file.size > limits.MaxBytes(kind)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": the ", KindName(kind), " is ", file.size,
                                                   " bytes; the limit is ", limits.MaxBytes(kind)));
  }
  if (kind == ManifestFileKind::kImage) {
    ASSIGN_OR_RETURN(auto bytes, ReadFile(path));
    auto image = DescribeImageBytes(bytes);
    if (!image.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", image.status().message()));
    return image;
  }
  if (kind == ManifestFileKind::kConfig) {
    ASSIGN_OR_RETURN(auto bytes, ReadFile(path));
    if (!nlohmann::json::accept(bytes)) return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON file"));
    file.sha256 = Sha256Hex(bytes);
    return file;
  }
  std::string start(9, '\0');
  std::ifstream in(path, std::ios::binary);
  in.read(start.data(), 9);
  start.resize(static_cast<size_t>(in.gcount()));
  if (auto problem = SafetensorsStartProblem(start); !problem.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", problem));
  }
  ASSIGN_OR_RETURN(auto hash, Sha256OfFile(path));
  file.sha256 = hash;
  return file;
}

std::string LoraStem(const std::string& name) {
  return absl::EndsWith(name, ".safetensors") ? name.substr(0, name.size() - 12) : name;
}

}  // namespace spriteforge
