#include "common/sprite/palette.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/files.h"
#include "common/status_macros.h"

namespace spriteforge::postprocess {
namespace {

Rgb Hex(uint32_t v) { return {uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)}; }

Palette FromHexList(std::initializer_list<uint32_t> list) {
  Palette p;
  std::set<uint32_t> seen;
  for (uint32_t v : list) {
    if (seen.insert(v).second) p.colors.push_back(Hex(v));
  }
  return p;
}

bool Opaque(const RasterImage& image, size_t pixel) {
  return image.channels < 4 || image.pixels[pixel * 4 + 3] >= 128;
}

Rgb PixelRgb(const RasterImage& image, size_t pixel) {
  const uint8_t* p = &image.pixels[pixel * image.channels];
  return {p[0], p[1], p[2]};
}

uint32_t Key(const Rgb& c) { return (uint32_t(c[0]) << 16) | (uint32_t(c[1]) << 8) | c[2]; }

// Distinct opaque colours with their pixel counts.
std::map<uint32_t, int> Histogram(const RasterImage& image) {
  std::map<uint32_t, int> h;
  const size_t n = size_t(image.width) * image.height;
  for (size_t i = 0; i < n; ++i) {
    if (Opaque(image, i)) ++h[Key(PixelRgb(image, i))];
  }
  return h;
}

struct Weighted {
  Oklab lab;
  int count;
};

Oklab Mean(const std::vector<Weighted>& v, size_t begin, size_t end) {
  double L = 0, a = 0, b = 0, w = 0;
  for (size_t i = begin; i < end; ++i) {
    L += v[i].lab.L * v[i].count;
    a += v[i].lab.a * v[i].count;
    b += v[i].lab.b * v[i].count;
    w += v[i].count;
  }
  return w > 0 ? Oklab{float(L / w), float(a / w), float(b / w)} : Oklab{};
}

// Median cut in Oklab: split the box with the widest extent at its weighted median.
std::vector<Oklab> MedianCut(std::vector<Weighted> colors, int n) {
  struct Box {
    size_t begin, end;
  };
  std::vector<Box> boxes = {{0, colors.size()}};
  while (static_cast<int>(boxes.size()) < n) {
    int best = -1, axis = 0;
    float widest = 0;
    for (size_t i = 0; i < boxes.size(); ++i) {
      if (boxes[i].end - boxes[i].begin < 2) continue;
      for (int ax = 0; ax < 3; ++ax) {
        float lo = 1e9f, hi = -1e9f;
        for (size_t k = boxes[i].begin; k < boxes[i].end; ++k) {
          const float v = ax == 0 ? colors[k].lab.L : ax == 1 ? colors[k].lab.a : colors[k].lab.b;
          lo = std::min(lo, v);
          hi = std::max(hi, v);
        }
        if (hi - lo > widest) {
          widest = hi - lo;
          best = static_cast<int>(i);
          axis = ax;
        }
      }
    }
    if (best < 0) break;
    Box box = boxes[best];
    auto value = [axis](const Weighted& w) { return axis == 0 ? w.lab.L : axis == 1 ? w.lab.a : w.lab.b; };
    std::sort(colors.begin() + box.begin, colors.begin() + box.end,
              [&](const Weighted& x, const Weighted& y) { return value(x) < value(y); });
    long total = 0;
    for (size_t k = box.begin; k < box.end; ++k) total += colors[k].count;
    long acc = 0;
    size_t mid = box.begin;
    while (mid < box.end - 1 && acc + colors[mid].count <= total / 2) acc += colors[mid++].count;
    mid = std::clamp(mid, box.begin + 1, box.end - 1);
    boxes[best] = {box.begin, mid};
    boxes.push_back({mid, box.end});
  }
  std::vector<Oklab> out;
  for (const Box& b : boxes) out.push_back(Mean(colors, b.begin, b.end));
  return out;
}

// Weighted k-means (Lloyd) in Oklab, seeded by median cut so the result is deterministic.
std::vector<Oklab> KMeans(const std::vector<Weighted>& colors, int n) {
  std::vector<Oklab> centres = MedianCut(colors, n);
  std::vector<int> assignment(colors.size(), 0);
  for (int iteration = 0; iteration < 16; ++iteration) {
    bool changed = false;
    for (size_t i = 0; i < colors.size(); ++i) {
      int best = 0;
      float best_d = 1e30f;
      for (size_t c = 0; c < centres.size(); ++c) {
        const float d = Distance2(colors[i].lab, centres[c]);
        if (d < best_d) best_d = d, best = static_cast<int>(c);
      }
      changed = changed || assignment[i] != best;
      assignment[i] = best;
    }
    if (!changed && iteration > 0) break;
    std::vector<std::array<double, 4>> sums(centres.size(), {0, 0, 0, 0});
    for (size_t i = 0; i < colors.size(); ++i) {
      auto& s = sums[assignment[i]];
      s[0] += colors[i].lab.L * colors[i].count;
      s[1] += colors[i].lab.a * colors[i].count;
      s[2] += colors[i].lab.b * colors[i].count;
      s[3] += colors[i].count;
    }
    for (size_t c = 0; c < centres.size(); ++c) {
      if (sums[c][3] > 0) centres[c] = {float(sums[c][0] / sums[c][3]), float(sums[c][1] / sums[c][3]),
                                        float(sums[c][2] / sums[c][3])};
    }
  }
  return centres;
}

int Nearest(const Oklab& lab, const std::vector<Oklab>& palette) {
  int best = 0;
  float best_d = 1e30f;
  for (size_t i = 0; i < palette.size(); ++i) {
    const float d = Distance2(lab, palette[i]);
    if (d < best_d) best_d = d, best = static_cast<int>(i);
  }
  return best;
}

}  // namespace

absl::StatusOr<Palette> BuiltinPalette(const std::string& name) {
  if (name == "pico8") {
    return FromHexList({0x000000, 0x1D2B53, 0x7E2553, 0x008751, 0xAB5236, 0x5F574F, 0xC2C3C7, 0xFFF1E8, 0xFF004D,
                        0xFFA300, 0xFFEC27, 0x00E436, 0x29ADFF, 0x83769C, 0xFF77A8, 0xFFCCAA});
  }
  if (name == "gameboy") return FromHexList({0x0F380F, 0x306230, 0x8BAC0F, 0x9BBC0F});
  if (name == "nes") {
    return FromHexList({0x7C7C7C, 0x0000FC, 0x0000BC, 0x4428BC, 0x940084, 0xA80020, 0xA81000, 0x881400, 0x503000,
                        0x007800, 0x006800, 0x005800, 0x004058, 0x000000, 0xBCBCBC, 0x0078F8, 0x0058F8, 0x6844FC,
                        0xD800CC, 0xE40058, 0xF83800, 0xE45C10, 0xAC7C00, 0x00B800, 0x00A800, 0x00A844, 0x008888,
                        0xF8F8F8, 0x3CBCFC, 0x6888FC, 0x9878F8, 0xF878F8, 0xF85898, 0xF87858, 0xFCA044, 0xF8B800,
                        0xB8F818, 0x58D854, 0x58F898, 0x00E8D8, 0x787878, 0xFCFCFC, 0xA4E4FC, 0xB8B8F8, 0xD8B8F8,
                        0xF8B8F8, 0xF8A4C0, 0xF0D0B0, 0xFCE0A8, 0xF8D878, 0xD8F878, 0xB8F8B8, 0xB8F8D8, 0x00FCFC,
                        0xF8D8F8});
  }
  return absl::NotFoundError(absl::StrCat("unknown palette \"", name, "\" (pico8, gameboy, nes, or a .hex/.gpl/.png file)"));
}

absl::StatusOr<Palette> ParsePaletteText(const std::string& text, PaletteFormat format) {
  Palette p;
  int line_no = 0;
  for (absl::string_view raw : absl::StrSplit(text, '\n')) {
    ++line_no;
    std::string line(absl::StripAsciiWhitespace(raw));
    if (line.empty()) continue;
    if (format == PaletteFormat::kHex) {
      if (line[0] == ';' || line[0] == '/') continue;  // comments some editors write
      if (line[0] == '#') line = line.substr(1);
      uint32_t v = 0;
      if (line.size() != 6 || !absl::SimpleHexAtoi(line, &v)) {
        return absl::InvalidArgumentError(absl::StrCat("line ", line_no, ": expected RRGGBB, got \"", line, "\""));
      }
      p.colors.push_back(Hex(v));
    } else {
      if (line_no == 1) {
        if (line != "GIMP Palette") return absl::InvalidArgumentError("line 1: expected \"GIMP Palette\"");
        continue;
      }
      if (line[0] == '#' || line.rfind("Name:", 0) == 0 || line.rfind("Columns:", 0) == 0) continue;
      std::istringstream in(line);
      int r = -1, g = -1, b = -1;
      if (!(in >> r >> g >> b) || r < 0 || r > 255 || g < 0 || g > 255 || b < 0 || b > 255) {
        return absl::InvalidArgumentError(absl::StrCat("line ", line_no, ": expected \"R G B [name]\" with 0..255"));
      }
      p.colors.push_back({uint8_t(r), uint8_t(g), uint8_t(b)});
    }
    if (p.colors.size() > 256) return absl::InvalidArgumentError("more than 256 colours");
  }
  if (p.colors.empty()) return absl::InvalidArgumentError("no colours");
  return p;
}

absl::StatusOr<Palette> LoadPalette(const std::string& name_or_path) {
  auto builtin = BuiltinPalette(name_or_path);
  if (builtin.ok() || name_or_path.find('.') == std::string::npos) return builtin;
  const std::string lower = absl::AsciiStrToLower(name_or_path);
  auto ends = [&](const char* ext) { return lower.size() > 4 && lower.compare(lower.size() - 4, 4, ext) == 0; };
  if (ends(".png")) {
    ASSIGN_OR_RETURN(auto image, ReadPngFile(name_or_path));
    Palette p;
    for (const auto& [key, count] : Histogram(image)) {
      if (p.colors.size() == 256) return absl::InvalidArgumentError(absl::StrCat(name_or_path, ": more than 256 colours"));
      p.colors.push_back(Hex(key));
    }
    if (p.colors.empty()) return absl::InvalidArgumentError(absl::StrCat(name_or_path, ": no opaque pixels"));
    return p;
  }
  if (!ends(".hex") && !ends(".gpl")) return builtin.status();
  ASSIGN_OR_RETURN(auto text, ReadFile(name_or_path));
  auto p = ParsePaletteText(text, ends(".gpl") ? PaletteFormat::kGpl : PaletteFormat::kHex);
  if (!p.ok()) return absl::InvalidArgumentError(absl::StrCat(name_or_path, ": ", p.status().message()));
  return p;
}

Palette DerivePalette(const RasterImage& image, int n, Quantizer quantizer) {
  const auto histogram = Histogram(image);
  Palette p;
  if (static_cast<int>(histogram.size()) <= n) {
    for (const auto& [key, count] : histogram) p.colors.push_back(Hex(key));
    return p;
  }
  std::vector<Weighted> colors;
  colors.reserve(histogram.size());
  for (const auto& [key, count] : histogram) colors.push_back({ToOklab(Hex(key)), count});
  const auto centres = quantizer == Quantizer::kKMeans ? KMeans(colors, n) : MedianCut(colors, n);
  std::set<uint32_t> seen;
  for (const Oklab& c : centres) {
    const Rgb rgb = FromOklab(c);
    if (seen.insert(Key(rgb)).second) p.colors.push_back(rgb);
  }
  return p;
}

RasterImage Quantize(const RasterImage& image, const Palette& palette, Dither dither) {
  RasterImage out = image;
  std::vector<Oklab> labs;
  for (const Rgb& c : palette.colors) labs.push_back(ToOklab(c));
  if (labs.empty()) return out;
  const int w = image.width, h = image.height, ch = image.channels;
  // Error diffusion works on RGB floats; ordered dithering offsets RGB by a Bayer threshold
  // scaled to the palette's typical spacing.
  std::vector<float> work(size_t(w) * h * 3);
  for (size_t i = 0; i < size_t(w) * h; ++i) {
    for (int c = 0; c < 3; ++c) work[i * 3 + c] = image.pixels[i * ch + c];
  }
  static constexpr int kBayer4[4][4] = {{0, 8, 2, 10}, {12, 4, 14, 6}, {3, 11, 1, 9}, {15, 7, 13, 5}};
  const float spread = 255.0f / std::max(2.0f, std::cbrt(float(palette.colors.size())));
  std::map<uint32_t, int> cache;  // exact colour -> palette index, for the undithered case
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const size_t i = size_t(y) * w + x;
      if (!Opaque(image, i)) continue;
      float v[3];
      for (int c = 0; c < 3; ++c) v[c] = work[i * 3 + c];
      if (dither == Dither::kBayer) {
        const float t = (kBayer4[y % 4][x % 4] + 0.5f) / 16.0f - 0.5f;
        for (float& c : v) c += t * spread;
      }
      const Rgb rgb = {uint8_t(std::clamp(std::lround(v[0]), 0L, 255L)), uint8_t(std::clamp(std::lround(v[1]), 0L, 255L)),
                       uint8_t(std::clamp(std::lround(v[2]), 0L, 255L))};
      int index;
      if (auto it = cache.find(Key(rgb)); it != cache.end()) {
        index = it->second;
      } else {
        index = Nearest(ToOklab(rgb), labs);
        cache[Key(rgb)] = index;
      }
      const Rgb& chosen = palette.colors[index];
      for (int c = 0; c < 3; ++c) out.pixels[i * ch + c] = chosen[c];
      if (dither == Dither::kFloydSteinberg) {
        for (int c = 0; c < 3; ++c) {
          const float err = v[c] - chosen[c];
          auto spread_to = [&](int dx, int dy, float weight) {
            const int nx = x + dx, ny = y + dy;
            if (nx < 0 || nx >= w || ny >= h) return;
            work[(size_t(ny) * w + nx) * 3 + c] += err * weight;
          };
          spread_to(1, 0, 7 / 16.0f);
          spread_to(-1, 1, 3 / 16.0f);
          spread_to(0, 1, 5 / 16.0f);
          spread_to(1, 1, 1 / 16.0f);
        }
      }
    }
  }
  return out;
}

absl::StatusOr<Dither> ParseDither(const std::string& name) {
  if (name == "none") return Dither::kNone;
  if (name == "bayer") return Dither::kBayer;
  if (name == "fs") return Dither::kFloydSteinberg;
  return absl::InvalidArgumentError(absl::StrCat("unknown dither \"", name, "\" (none, bayer, fs)"));
}

}  // namespace spriteforge::postprocess
