#include "tests/worker/engine/golden_engine.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <stdexcept>

#include "common/png.h"
#include "tests/worker/engine/golden.h"

namespace spriteforge::engine::testing {

Engine& TinyEngine(const std::string& layout) {
  static std::map<std::string, std::unique_ptr<Engine>> engines;
  std::unique_ptr<Engine>& engine = engines[layout];
  if (!engine) {
    const std::string dir = GoldenDir();
    LoadOptions o;
    o.model_path = dir + "/" + layout;
    if (layout != "diffusers") {
      o.config_dir = dir + "/diffusers";
      o.tokenizer_dir = dir + "/tokenizer";
    }
    auto loaded = Engine::Load(o);
    // Thrown, the test that asked fails with the reason (gtest reports the exception).
    if (!loaded.ok()) throw std::runtime_error("cannot load the tiny model (" + layout + "): " + loaded.status().ToString());
    engine = std::move(*loaded);
  }
  return *engine;
}

void ExpectReferenceImages(const SafetensorsFile& vectors, const std::string& dir, const std::string& name,
                           const BatchResult& result, double tolerance) {
  const TensorView* want = vectors.Find(name + ".images");
  ASSERT_NE(want, nullptr) << name;
  const float* ref = static_cast<const float*>(want->data);
  size_t offset = 0;
  for (size_t i = 0; i < result.images.size(); ++i) {
    const Image& image = result.images[i];
    ASSERT_LE((offset + image.rgb_f32.size()) * sizeof(float), want->nbytes) << name << ": more images than the reference";
    double max_err = 0;
    for (size_t k = 0; k < image.rgb_f32.size(); ++k) {
      max_err = std::max(max_err, std::fabs(double(image.rgb_f32[k]) - ref[offset + k]));
    }
    offset += image.rgb_f32.size();
    EXPECT_LT(max_err, tolerance) << name << " image " << i;
    auto png = ReadPngFile(dir + "/" + name + "_" + std::to_string(i) + ".png");
    ASSERT_TRUE(png.ok()) << png.status();
    ASSERT_EQ(png->pixels.size(), image.rgb.size());
    int worst = 0;
    for (size_t k = 0; k < image.rgb.size(); ++k) worst = std::max(worst, std::abs(int(image.rgb[k]) - int(png->pixels[k])));
    EXPECT_LE(worst, 1) << name << " image " << i << ": PNG differs by " << worst << " levels";
    std::printf("%s[%zu] max abs error %.3g, PNG max diff %d\n", name.c_str(), i, max_err, worst);
  }
  EXPECT_EQ(offset * sizeof(float), want->nbytes);
}

double MaxDifference(const Image& a, const Image& b) {
  if (a.rgb_f32.size() != b.rgb_f32.size()) return INFINITY;
  double worst = 0;
  for (size_t k = 0; k < a.rgb_f32.size(); ++k) {
    worst = std::max(worst, std::fabs(double(a.rgb_f32[k]) - b.rgb_f32[k]));
  }
  return worst;
}

}  // namespace spriteforge::engine::testing
