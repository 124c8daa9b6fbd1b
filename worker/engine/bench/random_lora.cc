#include "worker/engine/bench/random_lora.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace spriteforge::bench {
namespace {

struct Linear {
  std::string name;
  int in = 0, out = 0;
};

// SDXL base's attention levels (diffusers names): channels and transformer depth.
std::vector<Linear> SdxlUnetLinears() {
  struct Level {
    std::string prefix;
    int channels, depth, attentions;
  };
  const std::vector<Level> levels = {{"down_blocks.1", 640, 2, 2}, {"down_blocks.2", 1280, 10, 2},
                                     {"mid_block", 1280, 10, 1},   {"up_blocks.0", 1280, 10, 3},
                                     {"up_blocks.1", 640, 2, 3}};
  constexpr int kContext = 2048;  // CLIP-L + bigG hidden sizes
  std::vector<Linear> out;
  for (const Level& level : levels) {
    const int c = level.channels;
    for (int a = 0; a < level.attentions; ++a) {
      const std::string attn = absl::StrCat(level.prefix, ".attentions.", a);
      out.push_back({attn + ".proj_in", c, c});
      out.push_back({attn + ".proj_out", c, c});
      for (int t = 0; t < level.depth; ++t) {
        const std::string block = absl::StrCat(attn, ".transformer_blocks.", t);
        for (const char* p : {"attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q", "attn2.to_out.0"}) {
          out.push_back({absl::StrCat(block, ".", p), c, c});
        }
        out.push_back({block + ".attn2.to_k", kContext, c});
        out.push_back({block + ".attn2.to_v", kContext, c});
        out.push_back({block + ".ff.net.0.proj", c, 8 * c});  // GEGLU: value and gate
        out.push_back({block + ".ff.net.2", 4 * c, c});
      }
    }
  }
  return out;
}

}  // namespace

uint16_t ToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000;
  const int exponent = static_cast<int>((x >> 23) & 0xff) - 127 + 15;
  uint32_t mantissa = x & 0x7fffff;
  if (exponent <= 0) return static_cast<uint16_t>(sign);  // tiny values flush to zero
  if (exponent >= 31) return static_cast<uint16_t>(sign | 0x7c00);
  mantissa += 0x1000;  // round to nearest
  if (mantissa & 0x800000) return static_cast<uint16_t>(sign | ((exponent + 1) << 10));
  return static_cast<uint16_t>(sign | (exponent << 10) | (mantissa >> 13));
}

absl::StatusOr<uint64_t> WriteRandomSdxlLora(const std::string& path, int rank, uint64_t seed) {
  const std::vector<Linear> layers = SdxlUnetLinears();
  nlohmann::json header = nlohmann::json::object();
  uint64_t offset = 0;
  auto add = [&](const std::string& key, int rows, int cols) {
    const uint64_t bytes = static_cast<uint64_t>(rows) * cols * 2;
    header[key] = {{"dtype", "F16"}, {"shape", {rows, cols}}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  };
  for (const Linear& l : layers) {
    add(absl::StrCat("unet.", l.name, ".lora_A.weight"), rank, l.in);
    add(absl::StrCat("unet.", l.name, ".lora_B.weight"), l.out, rank);
  }
  std::string text = header.dump();
  while ((text.size() + 8) % 8) text.push_back(' ');
  std::ofstream f(path, std::ios::binary);
  if (!f) return absl::UnavailableError(absl::StrCat("cannot write ", path));
  const uint64_t n = text.size();
  f.write(reinterpret_cast<const char*>(&n), 8);
  f.write(text.data(), static_cast<std::streamsize>(text.size()));
  std::mt19937_64 rng(seed);
  std::vector<uint16_t> buf;
  auto fill = [&](int rows, int cols, float scale) {
    std::uniform_real_distribution<float> u(-scale, scale);
    buf.resize(static_cast<size_t>(rows) * cols);
    for (uint16_t& v : buf) v = ToHalf(u(rng));
    f.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(buf.size() * 2));
  };
  for (const Linear& l : layers) {
    fill(rank, l.in, 1.0f / std::sqrt(static_cast<float>(l.in)));  // lora_A: the down projection
    fill(l.out, rank, 0.01f);                                       // lora_B: small, as after training
  }
  if (!f) return absl::DataLossError(absl::StrCat("writing ", path, " failed"));
  return static_cast<uint64_t>(8 + text.size() + offset);
}

}  // namespace spriteforge::bench
