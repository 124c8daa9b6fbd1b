// Linear's two entry points and its fp8 switch, and the fused ops' CPU fallbacks, which are
// the reference numerics the CUDA kernels are checked against (spriteforge-kernel-check).
#include <gtest/gtest.h>

#include "src/fused_ops.h"
#include "src/layers.h"

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
