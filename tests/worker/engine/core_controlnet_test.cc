// The ControlNet computes what the reference's ControlNetModel computes on the golden tiny
// model's ControlNet (fp16 on disk, float32 on the CPU; tolerance 1e-4): one call on fixed
// inputs, nine down residuals and the mid one.
#include <gtest/gtest.h>

#include <cmath>

#include <torch/torch.h>

#include "tests/worker/engine/golden.h"
#include "worker/engine/src/controlnet.h"

namespace spriteforge::engine {
namespace {

torch::Tensor Vector(const std::string& name) {
  const TensorView* v = testing::ControlVectors().Find(name);
  EXPECT_NE(v, nullptr) << name;
  if (!v) return torch::zeros({1});
  return torch::from_blob(const_cast<void*>(v->data), v->shape, torch::kFloat).clone();
}

void ExpectReference(const ControlNetImpl::Residuals& got) {
  ASSERT_EQ(got.down.size(), 9u);
  for (size_t i = 0; i < got.down.size(); ++i) {
    const torch::Tensor want = Vector("controlnet.out.down." + std::to_string(i));
    ASSERT_EQ(got.down[i].sizes(), want.sizes()) << i;
    EXPECT_LT((got.down[i] - want).abs().max().item<double>(), 1e-4) << "down " << i;
  }
  const torch::Tensor mid = Vector("controlnet.out.mid");
  ASSERT_EQ(got.mid.sizes(), mid.sizes());
  EXPECT_LT((got.mid - mid).abs().max().item<double>(), 1e-4) << "mid";
}

// The reference call's inputs (`controlnet.in.*`).
struct ReferenceInputs {
  torch::Tensor sample = Vector("controlnet.in.sample"), timestep = Vector("controlnet.in.timestep");
  torch::Tensor context = Vector("controlnet.in.encoder_hidden_states"), pooled = Vector("controlnet.in.text_embeds");
  torch::Tensor time_ids = Vector("controlnet.in.time_ids"), cond = Vector("controlnet.in.cond");
};

ControlNet GoldenControlNet() {
  auto net = LoadControlNet(testing::ControlsDir() + "/controlnet", TinySdxlConfig().unet, ControlNetRunOptions{});
  EXPECT_TRUE(net.ok()) << net.status();
  return net.ok() ? *net : ControlNet{nullptr};
}

TEST(ControlNet, ResidualsMatchTheReference) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  ControlNet net = GoldenControlNet();
  ASSERT_TRUE(net);
  torch::NoGradGuard no_grad;
  const ReferenceInputs in;
  ExpectReference(net->forward(in.sample, in.timestep, in.context, in.pooled, in.time_ids, in.cond, 1.0));
  // The generation's path: the context's keys and values and the images' embedding computed
  // once beforehand.
  ExpectReference(net->ForwardWithKV(in.sample, in.timestep, net->CrossAttentionKV(in.context), in.pooled, in.time_ids,
                                     net->EmbedCondition(in.cond), 1.0));
}

// Guess mode weights the down residuals 10^(-1 + i/9) times the scale, from 0.1 at the
// first towards 1 at the deepest, and the mid one by the scale (diffusers' guess_mode).
TEST(ControlNet, GuessModeWeightsTheResidualsFromOuterToDeep) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  ControlNet net = GoldenControlNet();
  ASSERT_TRUE(net);
  torch::NoGradGuard no_grad;
  const ReferenceInputs in;
  const double scale = 0.8;
  const ControlNetImpl::Residuals guess =
      net->forward(in.sample, in.timestep, in.context, in.pooled, in.time_ids, in.cond, scale, /*guess_mode=*/true);
  ASSERT_EQ(guess.down.size(), 9u);
  for (size_t i = 0; i < guess.down.size(); ++i) {
    const torch::Tensor want = Vector("controlnet.out.down." + std::to_string(i)) * (scale * std::pow(10.0, -1.0 + i / 9.0));
    EXPECT_LT((guess.down[i] - want).abs().max().item<double>(), 1e-4) << "down " << i;
  }
  EXPECT_LT((guess.mid - Vector("controlnet.out.mid") * scale).abs().max().item<double>(), 1e-4);
}

}  // namespace
}  // namespace spriteforge::engine
