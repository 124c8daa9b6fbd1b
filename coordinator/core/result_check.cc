#include "coordinator/core/result_check.h"

#include "absl/strings/str_cat.h"
#include "common/png.h"
#include "common/status_macros.h"

namespace spriteforge::coordinator {
namespace {

struct PngSize {
  int width = 0, height = 0;
};

// Width and height from the IHDR chunk, which a PNG must open with.
bool ReadHeader(const std::string& png, PngSize* size) {
  static constexpr char kSignature[] = "\x89PNG\r\n\x1a\n";
  if (png.size() < 33 || png.compare(0, 8, kSignature, 8) != 0 || png.compare(12, 4, "IHDR") != 0) return false;
  auto be32 = [&](size_t at) {
    const auto* p = reinterpret_cast<const unsigned char*>(png.data() + at);
    return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
  };
  if (be32(8) != 13 || be32(16) > 1u << 30 || be32(20) > 1u << 30) return false;
  size->width = static_cast<int>(be32(16));
  size->height = static_cast<int>(be32(20));
  return true;
}

// The most bytes a PNG of this size can take: 8-bit RGBA rows with their filter bytes,
// stored without compression (deflate adds 5 bytes per 64 KiB block, chunks 12 bytes per
// IDAT), plus room for text chunks such as the generation parameters.
size_t MaxBytes(const PngSize& s) {
  const size_t raw = (4 * static_cast<size_t>(s.width) + 1) * static_cast<size_t>(s.height);
  return raw + raw / 64 + (64 << 10);
}

absl::Status CheckPng(const std::string& png, const char* what, const ResultLimits& limits, PngSize* size) {
  if (png.size() > limits.max_png_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("the ", what, " is ", png.size(), " bytes; the limit is ", limits.max_png_bytes));
  }
  if (!ReadHeader(png, size)) return absl::InvalidArgumentError(absl::StrCat("the ", what, " is not a PNG"));
  if (png.size() > MaxBytes(*size)) {
    return absl::InvalidArgumentError(absl::StrCat("the ", what, " is ", png.size(), " bytes, more than a ", size->width,
                                                   "x", size->height, " PNG can take"));
  }
  return absl::OkStatus();
}

// Decoded last, once the header has bounded what decoding may allocate.
absl::Status Decodes(const std::string& png, const char* what) {
  if (auto image = DecodePng(png); !image.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("the ", what, " does not decode: ", image.status().message()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckItemResult(const v1::ItemResult& result, const v1::SamplingParams& params, bool postprocess,
                             const ResultLimits& limits) {
  PngSize render;
  RETURN_IF_ERROR(CheckPng(result.png(), "render", limits, &render));
  if (render.width != params.width() || render.height != params.height()) {
    return absl::InvalidArgumentError(absl::StrCat("the render is ", render.width, "x", render.height, ", the item is ",
                                                   params.width(), "x", params.height()));
  }
  RETURN_IF_ERROR(Decodes(result.png(), "render"));
  if (!postprocess && (!result.sprite_png().empty() || !result.postprocess_error().empty())) {
    return absl::InvalidArgumentError("a sprite for an item whose job has no postprocess section");
  }
  if (result.sprite_png().empty()) return absl::OkStatus();
  PngSize sprite;
  RETURN_IF_ERROR(CheckPng(result.sprite_png(), "sprite", limits, &sprite));
  if (sprite.width < 1 || sprite.height < 1 || sprite.width > limits.max_sprite_side ||
      sprite.height > limits.max_sprite_side) {
    return absl::InvalidArgumentError(absl::StrCat("the sprite is ", sprite.width, "x", sprite.height,
                                                   ", not within 1..", limits.max_sprite_side));
  }
  return Decodes(result.sprite_png(), "sprite");
}

bool Quarantine::Strike(const std::string& worker_id, int64_t now_ms) {
  Record& r = records_[worker_id];
  if (++r.strikes < strikes_) return false;
  r.strikes = 0;
  r.until_ms = now_ms + duration_ms_;
  return true;
}

void Quarantine::Quarantined(const std::string& worker_id, int64_t now_ms) {
  Record& r = records_[worker_id];
  r.strikes = 0;
  r.until_ms = now_ms + duration_ms_;
}

void Quarantine::Clear(const std::string& worker_id) {
  auto it = records_.find(worker_id);
  if (it != records_.end() && it->second.until_ms == 0) records_.erase(it);
  else if (it != records_.end()) it->second.strikes = 0;
}

absl::Status Quarantine::Admit(const std::string& worker_id, int64_t now_ms) {
  auto it = records_.find(worker_id);
  if (it == records_.end() || it->second.until_ms == 0) return absl::OkStatus();
  if (now_ms >= it->second.until_ms) {
    records_.erase(it);
    return absl::OkStatus();
  }
  // Credentials name their kind ("token gpu"); a bare key is a worker id.
  const bool credential = worker_id.find(' ') != std::string::npos;
  return absl::PermissionDeniedError(absl::StrCat(credential ? "" : "worker ", worker_id, " is quarantined for ",
                                                  (it->second.until_ms - now_ms + 999) / 1000, " more s after ",
                                                  strikes_, " batches of invalid results"));
}

}  // namespace spriteforge::coordinator
