// Linear's two entry points and its fp8 switch, and the fused ops' CPU fallbacks, which are
// the reference numerics the CUDA kernels are checked against (spriteforge-kernel-check).
#include <gtest/gtest.h>

#include "worker/engine/base/model_config.h"
#include "worker/engine/src/fused_ops.h"
#include "worker/engine/src/layers.h"
#include "worker/engine/src/unet.h"
#include "worker/engine/src/unet_blocks.h"

namespace spriteforge::engine {
namespace {

TEST(Linear, RowsAndTensorsGiveTheSameResult) {
  torch::manual_seed(3);
  Linear linear(32, 48);
  torch::Tensor x = torch::randn({2, 5, 32});
  torch::Tensor want = torch::matmul(x, linear->weight.t()) + linear->bias;
  EXPECT_TRUE(torch::allclose(linear(x), want, 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(linear->Apply(Rows{x, {}}), want, 1e-5, 1e-5));
}

TEST(Linear, Fp8RowsNeedFp8Weights) {
  Linear linear(16, 16);
  Fp8Rows rows{torch::zeros({4, 16}), torch::ones({4, 1})};
  try {
    linear->Apply(Rows{{}, rows});
    FAIL() << "fp8 rows were accepted by a Linear without fp8 weights";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("fp8 rows reached a Linear without fp8 weights"), std::string::npos);
  }
}

TEST(Linear, Fp8NeedsShapesInSixteens) {
  Linear linear(24, 40);
  torch::Tensor before = linear->weight.clone();
  EXPECT_FALSE(linear->QuantizeToFp8());
  EXPECT_FALSE(linear->is_fp8());
  EXPECT_TRUE(linear->weight.equal(before));
  EXPECT_EQ(linear->Fp8WeightBytes(), 0u);
}

TEST(Linear, Fp8OnAnUnsupportedBuildFailsAndKeepsTheWeights) {
  if (FusedKernelsAvailable()) GTEST_SKIP() << "this build has the CUDA kernels";
  Linear linear(32, 32);
  torch::Tensor before = linear->weight.clone();
  EXPECT_THROW(linear->QuantizeToFp8(), c10::Error);
  EXPECT_FALSE(linear->is_fp8());
  EXPECT_TRUE(linear->weight.equal(before));
  EXPECT_FALSE(Fp8Unsupported(torch::kCPU).empty());
}

TEST(AttentionBlock, FusedProjectionsAreTheSameMathInOneGemm) {
  torch::manual_seed(7);
  torch::NoGradGuard no_grad;
  AttentionBlock attention(64, 64, 4, /*qkv_bias=*/false);
  torch::Tensor x = torch::randn({2, 10, 64});
  torch::Tensor separate = attention.forward(Rows{x, {}}, {});
  ASSERT_TRUE(attention.FuseProjections());
  EXPECT_TRUE(torch::allclose(attention.forward(Rows{x, {}}, {}), separate, 1e-5, 1e-5));
  // The separate weights are views of the stacked one: no second copy of them.
  EXPECT_EQ(attention.to_k->weight.data_ptr<float>(), attention.to_q->weight.data_ptr<float>() + 64 * 64);
  AttentionBlock with_bias(64, 64, 4, /*qkv_bias=*/true);
  EXPECT_FALSE(with_bias.FuseProjections());
}

// The denoising loop projects the prompts' keys and values once; each step must then give
// exactly what projecting them inside the UNet gives.
TEST(UpsampleNearest2x, ChannelsLastIsTheSameAsInterpolateAndKeepsItsLayout) {
  torch::manual_seed(5);
  torch::Tensor x = torch::randn({2, 24, 5, 7});
  torch::Tensor want = torch::nn::functional::interpolate(
      x, torch::nn::functional::InterpolateFuncOptions().mode(torch::kNearest).size(std::vector<int64_t>{10, 14}));
  torch::Tensor nhwc = UpsampleNearest2x(x.contiguous(at::MemoryFormat::ChannelsLast));
  EXPECT_TRUE(nhwc.equal(want));
  EXPECT_TRUE(nhwc.is_contiguous(at::MemoryFormat::ChannelsLast));
  EXPECT_TRUE(UpsampleNearest2x(x).equal(want));
  EXPECT_EQ(nhwc[1][3][9][13].item<float>(), x[1][3][4][6].item<float>());
}

TEST(UNet, PrecomputedCrossAttentionKeysAndValuesMatch) {
  torch::manual_seed(11);
  torch::NoGradGuard no_grad;
  const UNetConfig config = TinySdxlConfig().unet;
  UNet unet(config);
  unet->eval();
  const int64_t batch = 2;
  torch::Tensor sample = torch::randn({batch, config.in_channels, 16, 16});
  torch::Tensor context = torch::randn({batch, 77, config.cross_attention_dim});
  torch::Tensor pooled = torch::randn({batch, config.projection_class_embeddings_input_dim -
                                                  6 * config.addition_time_embed_dim});
  torch::Tensor time_ids = torch::tensor({128.f, 128.f, 0.f, 0.f, 128.f, 128.f}).repeat({batch, 1});
  torch::Tensor t = torch::full({1}, 501.0);
  torch::Tensor direct = unet->forward(sample, t, context, pooled, time_ids);
  torch::Tensor kv = unet->CrossAttentionKV(context);
  EXPECT_TRUE(torch::equal(unet->ForwardWithKV(sample, t, kv, pooled, time_ids), direct));
  EXPECT_THROW(unet->ForwardWithKV(sample.narrow(0, 0, 1).repeat({3, 1, 1, 1}), t, kv, pooled, time_ids), c10::Error);
}

// Asking for fp8 rows where no fused kernel applies gives plain values, so the consuming
// Linear quantizes (or, without fp8 weights, uses) them itself.
TEST(FusedOpsFallback, Fp8RequestsFallBackToValues) {
  torch::manual_seed(5);
  torch::Tensor p = torch::randn({6, 64});
  Rows geglu = Geglu(p, /*fp8=*/true);
  ASSERT_TRUE(geglu.values.defined());
  EXPECT_FALSE(geglu.fp8.defined());
  std::vector<torch::Tensor> halves = p.chunk(2, -1);
  EXPECT_TRUE(torch::allclose(geglu.values, halves[0] * torch::gelu(halves[1])));

  torch::nn::LayerNorm norm(torch::nn::LayerNormOptions({32}).eps(1e-5));
  torch::Tensor x = torch::randn({6, 32}), y = torch::randn({6, 32});
  StreamAndNorm out = AddLayerNorm(x, y, norm, /*fp8=*/true);
  ASSERT_TRUE(out.normed.values.defined());
  EXPECT_FALSE(out.normed.fp8.defined());
  EXPECT_TRUE(out.stream.equal(x + y));
  EXPECT_TRUE(torch::allclose(out.normed.values, torch::layer_norm(x + y, {32}, norm->weight, norm->bias, 1e-5)));
}

}  // namespace
}  // namespace spriteforge::engine
