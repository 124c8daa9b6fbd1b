#include "tests/worker/engine/golden.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

namespace spriteforge::engine::testing {
namespace {

float HalfToFloat(uint16_t h) {
  const int exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF;
  const float sign = (h & 0x8000) ? -1.0f : 1.0f;
  if (exponent == 0) return sign * std::ldexp(static_cast<float>(mantissa), -24);
  if (exponent == 31) return mantissa ? NAN : sign * INFINITY;
  return sign * std::ldexp(static_cast<float>(mantissa + 1024), exponent - 25);
}

}  // namespace

std::string GoldenDir() {
  const char* dir = std::getenv("SPRITEFORGE_GOLDEN");
  if (!dir || !*dir || !std::filesystem::exists(std::filesystem::path(dir) / "cases.json")) return "";
  return dir;
}

bool GoldenRequired() {
  const char* required = std::getenv("SPRITEFORGE_REQUIRE_GOLDEN");
  return required && std::string(required) == "1";
}

std::string WorkflowsDir() {
  const std::string golden = GoldenDir();
  return golden.empty() ? "" : (std::filesystem::path(golden).parent_path() / "tiny-sdxl-workflows").string();
}

std::string ControlsDir() {
  const std::string golden = GoldenDir();
  if (golden.empty()) return "";
  const std::filesystem::path beside = std::filesystem::path(golden).parent_path() / "tiny-sdxl-controls";
  if (std::filesystem::exists(beside / "cases.json")) return beside.string();
  // The copy kept in the repository (tests/golden/) until the shared folder has one.
  return (std::filesystem::path(SPRITEFORGE_SOURCE_DIR) / "tests" / "golden" / "tiny-sdxl-controls").string();
}

const SafetensorsFile& ControlVectors() {
  static std::unique_ptr<SafetensorsFile> file = [] {
    auto opened = SafetensorsFile::Open(ControlsDir() + "/vectors.safetensors");
    if (!opened.ok()) {
      ADD_FAILURE() << opened.status();
      std::abort();
    }
    return std::move(*opened);
  }();
  return *file;
}

void WriteSafetensors(const std::string& path, const std::vector<F32Tensor>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  std::string data;
  for (const F32Tensor& t : tensors) {
    const size_t begin = data.size();
    data.append(reinterpret_cast<const char*>(t.values.data()), t.values.size() * sizeof(float));
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {begin, data.size()}}};
  }
  const std::string text = header.dump();
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xFF));
  out << text << data;
}

std::vector<F32Tensor> ReadSafetensors(const std::string& path) {
  auto file = SafetensorsFile::Open(path);
  EXPECT_TRUE(file.ok()) << file.status();
  std::vector<F32Tensor> out;
  if (!file.ok()) return out;
  for (const TensorView& v : (*file)->tensors()) {
    F32Tensor t{v.name, v.shape, {}};
    size_t n = 1;
    for (int64_t d : v.shape) n *= d;
    t.values.resize(n);
    if (v.dtype == DType::kF32) {
      std::memcpy(t.values.data(), v.data, n * sizeof(float));
    } else {
      EXPECT_EQ(v.dtype, DType::kF16) << v.name;
      const uint16_t* h = static_cast<const uint16_t*>(v.data);
      for (size_t i = 0; i < n; ++i) t.values[i] = HalfToFloat(h[i]);
    }
    out.push_back(std::move(t));
  }
  return out;
}

const SafetensorsFile& WorkflowVectors() {
  static std::unique_ptr<SafetensorsFile> file = [] {
    auto opened = SafetensorsFile::Open(WorkflowsDir() + "/vectors.safetensors");
    if (!opened.ok()) {
      ADD_FAILURE() << opened.status();
      std::abort();
    }
    return std::move(*opened);
  }();
  return *file;
}

const SafetensorsFile& GoldenVectors() {
  static std::unique_ptr<SafetensorsFile> file = [] {
    auto opened = SafetensorsFile::Open(GoldenDir() + "/vectors.safetensors");
    if (!opened.ok()) {
      ADD_FAILURE() << opened.status();
      std::abort();
    }
    return std::move(*opened);
  }();
  return *file;
}

}  // namespace spriteforge::engine::testing
