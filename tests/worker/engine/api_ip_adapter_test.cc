// IP-Adapter (plain and Plus) through the public engine API, against the reference images
// of tiny-sdxl-controls (float32 on the CPU): images within 1e-3, PNGs within one level.
#include <gtest/gtest.h>

#include "common/png.h"
#include "spriteforge/engine/engine.h"
#include "tests/worker/engine/golden.h"
#include "tests/worker/engine/golden_engine.h"
#include "worker/engine/tools/golden_cases.h"

namespace spriteforge::engine {
namespace {

using testing::MaxDifference;
using testing::TinyEngine;

RgbImage ReferenceImage() {
  auto png = ReadPngFile(testing::ControlsDir() + "/reference.png");
  EXPECT_TRUE(png.ok()) << png.status();
  return png.ok() ? RgbImage{png->width, png->height, png->pixels} : RgbImage{};
}

// The cases of tiny-sdxl-controls/cases.json: one knight, negative "blurry", 4 Euler steps
// at guidance 5, 128x128, the reference image through the named adapter.
BatchRequest IpAdapterCase(const std::string& file, double scale, uint64_t seed) {
  const std::string dir = testing::ControlsDir();
  BatchRequest r;
  r.width = r.height = 128;
  r.steps = 4;
  r.cfg = 5.0;
  r.sampler = SamplerKind::kEuler;
  ImageRequest image{"a pixel art knight with a sword, 16-bit sprite", "blurry", seed};
  image.reference_images = {ReferenceImage()};
  r.images = {image};
  r.ip_adapter = IpAdapterSpec{dir + "/" + file, dir + "/image_encoder", scale};
  return r;
}

void ExpectReferenceImages(const std::string& name, const BatchRequest& request) {
  auto result = TinyEngine().Generate(request);
  ASSERT_TRUE(result.ok()) << result.status();
  testing::ExpectReferenceImages(testing::ControlVectors(), testing::ControlsDir(), name, *result, 1e-3);
}

Image Generate(const BatchRequest& request) {
  auto result = TinyEngine().Generate(request);
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? result->images.at(0) : Image{};
}

TEST(IpAdapter, PlainMatchesTheReference) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  ExpectReferenceImages("ipadapter.euler", IpAdapterCase("ip-adapter.safetensors", 0.6, 42));
}

TEST(IpAdapter, PlusMatchesTheReference) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  ExpectReferenceImages("ipadapter_plus.euler", IpAdapterCase("ip-adapter-plus.safetensors", 0.7, 7));
}

TEST(IpAdapter, PoseAndIdentityTogetherMatchTheReference) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  // A ControlNet until 75% of the steps and a Plus adapter, two seeds, ancestral sampling.
  auto cases = LoadControlCases(testing::ControlsDir());
  ASSERT_TRUE(cases.ok()) << cases.status();
  ExpectReferenceImages("pose_and_identity.euler_a", cases->at("pose_and_identity.euler_a"));
}

TEST(IpAdapter, AtScaleZeroTheImageIsThePromptsAloneAndWithoutGuidanceItStillActs) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  BatchRequest request = IpAdapterCase("ip-adapter-plus.safetensors", 0.0, 7);
  BatchRequest plain = request;
  plain.ip_adapter.reset();
  plain.images[0].reference_images.clear();
  EXPECT_LT(MaxDifference(Generate(request), Generate(plain)), 1e-6);
  // Guidance 1: one UNet call per image, no unconditional half.
  request.cfg = plain.cfg = 1.0;
  request.ip_adapter->scale = 0.7;
  EXPECT_GT(MaxDifference(Generate(request), Generate(plain)), 1e-3) << "the adapter changed nothing";
}

TEST(IpAdapter, RequestsWithoutMatchingReferenceImagesAreRefused) {
  const RgbImage ref{2, 2, std::vector<uint8_t>(12, 0)};
  BatchRequest request;
  request.images = {{"a", std::nullopt, 1}, {"b", std::nullopt, 2}};
  request.images[0].reference_images = {ref};
  EXPECT_NE(ValidateRequest(request).message().find("image 0 has reference images but the batch has no IP-Adapter"),
            std::string::npos);
  request.ip_adapter = IpAdapterSpec{"adapter.safetensors", "image_encoder", 0.6};
  EXPECT_NE(ValidateRequest(request).message().find("image 1: an IP-Adapter needs at least one reference image"),
            std::string::npos);
  request.images[1].reference_images = {ref, ref};
  EXPECT_NE(ValidateRequest(request).message().find("every image of a batch needs the same number"), std::string::npos);
  request.images[1].reference_images = {RgbImage{2, 2, {1, 2, 3}}};
  EXPECT_NE(ValidateRequest(request).message().find("image 1: reference image 0 is 2x2 with 3 bytes"), std::string::npos);
  request.images[1].reference_images = {ref};
  request.ip_adapter->scale = NAN;
  EXPECT_NE(ValidateRequest(request).message().find("scale must be a finite number"), std::string::npos);
  request.ip_adapter->scale = 0.6;
  EXPECT_TRUE(ValidateRequest(request).ok()) << ValidateRequest(request);
}

}  // namespace
}  // namespace spriteforge::engine
