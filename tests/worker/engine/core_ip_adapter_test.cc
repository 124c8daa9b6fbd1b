// The IP-Adapter's parts against the reference's component vectors (tiny-sdxl-controls,
// float32 on the CPU, tolerance 1e-4): the image processor, the CLIP vision encoder, and
// the plain and Plus projections.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "common/png.h"
#include "tests/worker/engine/golden.h"
#include "worker/engine/src/checkpoint.h"
#include "worker/engine/src/clip_vision_encoder.h"
#include "worker/engine/src/ip_adapter.h"

namespace spriteforge::engine {
namespace {

constexpr double kTolerance = 1e-4;

torch::Tensor Reference(const std::string& name) {
  const TensorView* v = testing::ControlVectors().Find(name);
  EXPECT_NE(v, nullptr) << name;
  if (!v) return torch::zeros({1});
  return torch::from_blob(const_cast<void*>(v->data), v->shape, torch::kFloat).clone();
}

double MaxAbsError(const torch::Tensor& got, const torch::Tensor& want) {
  EXPECT_EQ(got.sizes(), want.sizes());
  if (got.sizes() != want.sizes()) return INFINITY;
  return (got.to(torch::kDouble) - want.to(torch::kDouble)).abs().max().item<double>();
}

RgbImage ReferenceImage() {
  auto png = ReadPngFile(testing::ControlsDir() + "/reference.png");
  EXPECT_TRUE(png.ok()) << png.status();
  return png.ok() ? RgbImage{png->width, png->height, png->pixels} : RgbImage{};
}

std::unique_ptr<IpAdapter> LoadAdapter(const std::string& file, UNetImpl& unet) {
  const std::string dir = testing::ControlsDir();
  auto adapter = IpAdapter::Load({dir + "/" + file, dir + "/image_encoder", 1.0}, unet, torch::kCPU, torch::kFloat);
  EXPECT_TRUE(adapter.ok()) << adapter.status();
  return adapter.ok() ? std::move(*adapter) : nullptr;
}

TEST(IpAdapterParts, EncoderAndProjectionsMatchTheReference) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  torch::NoGradGuard no_grad;
  SdxlModels tiny = BuildSdxl(TinySdxlConfig());  // only its shape matters to the adapter
  auto plain = LoadAdapter("ip-adapter.safetensors", *tiny.unet);
  auto plus = LoadAdapter("ip-adapter-plus.safetensors", *tiny.unet);
  ASSERT_TRUE(plain && plus);

  const torch::Tensor pixels = ClipPixels(ReferenceImage(), plain->encoder().config().image_size);
  const ClipVisionOutput encoded = plain->encoder().forward(pixels);
  const ClipVisionOutput blank = plain->encoder().forward(torch::zeros_like(pixels));
  const std::pair<const char*, torch::Tensor> parts[] = {
      {"ipadapter.pixel_values", pixels},
      {"ipadapter.image_embeds", encoded.image_embeds},
      {"ipadapter.penultimate", encoded.penultimate},
      {"ipadapter.uncond_penultimate", blank.penultimate},
      {"ipadapter.plain.tokens", plain->Tokens(encoded)},
      {"ipadapter.plus.tokens", plus->Tokens(encoded)},
  };
  for (const auto& [name, got] : parts) {
    const double err = MaxAbsError(got, Reference(name));
    std::printf("%s max abs error %.3g\n", name, err);
    EXPECT_LT(err, kTolerance) << name;
  }
}

TEST(IpAdapterParts, ResizingKeepsAFlatColourAndCropsToTheEncoderSize) {
  // Any size and aspect: the shortest side becomes the encoder's size, the centre is cut out,
  // and a flat colour stays that colour through the bicubic filter.
  const RgbImage flat{50, 37, std::vector<uint8_t>(50 * 37 * 3, 200)};
  const torch::Tensor pixels = ClipPixels(flat, 32);
  ASSERT_EQ(pixels.sizes(), (std::vector<int64_t>{1, 3, 32, 32}));
  const double mean[3] = {0.48145466, 0.4578275, 0.40821073}, std[3] = {0.26862954, 0.26130258, 0.27577711};
  for (int c = 0; c < 3; ++c) {
    const double want = (200 / 255.0 - mean[c]) / std[c];
    EXPECT_LT((pixels[0][c].to(torch::kDouble) - want).abs().max().item<double>(), 1e-6) << "channel " << c;
  }
}

TEST(IpAdapterParts, FilesForAnotherModelAreRefusedNamingTheTensor) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  SdxlConfig other = TinySdxlConfig();
  other.unet.cross_attention_dim = 32;
  SdxlModels model = BuildSdxl(other);
  const std::string dir = testing::ControlsDir();
  auto adapter = IpAdapter::Load({dir + "/ip-adapter.safetensors", dir + "/image_encoder", 1.0}, *model.unet,
                                 torch::kCPU, torch::kFloat);
  ASSERT_FALSE(adapter.ok());
  EXPECT_NE(adapter.status().message().find("'image_proj.norm.bias' is [64], expected [32]"), std::string::npos) << adapter.status();
}

}  // namespace
}  // namespace spriteforge::engine
