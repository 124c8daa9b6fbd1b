// The text encoders, UNet and VAE compute what the reference computes on the golden tiny
// model, loaded from both checkpoint layouts, in float32 on the CPU (tolerance 1e-4).
#include <gtest/gtest.h>

#include <map>
#include <set>

#include <torch/torch.h>

#include "tests/worker/engine/golden.h"
#include "worker/engine/base/key_mapping.h"
#include "worker/engine/base/safetensors.h"
#include "worker/engine/src/checkpoint.h"
#include "worker/engine/src/pipeline.h"

namespace spriteforge::engine {
namespace {

constexpr double kTolerance = 1e-4;

torch::Tensor Golden(const std::string& name) {
  const TensorView* v = testing::GoldenVectors().Find(name);
  EXPECT_NE(v, nullptr) << name;
  if (!v) return torch::zeros({1});
  auto dtype = v->dtype == DType::kI64 ? torch::kLong : v->dtype == DType::kF64 ? torch::kDouble : torch::kFloat;
  return torch::from_blob(const_cast<void*>(v->data), v->shape, dtype).clone();
}

double MaxAbsError(const torch::Tensor& got, const torch::Tensor& want) {
  EXPECT_EQ(got.sizes(), want.sizes());
  return (got.to(torch::kDouble) - want.to(torch::kDouble)).abs().max().item<double>();
}

// A single file carries no architecture: its configs come from --config (here the golden
// diffusers folder), as they would for any non-SDXL-base checkpoint.
std::string ConfigDirFor(const std::string& model) {
  return model == "diffusers" ? "" : testing::GoldenDir() + "/diffusers";
}

class GoldenModels : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    SPRITEFORGE_REQUIRE_GOLDEN_DIR();
    static std::map<std::string, SdxlModels> loaded;  // one load per layout per process
    auto it = loaded.find(GetParam());
    if (it == loaded.end()) {
      const std::string path = testing::GoldenDir() + "/" + GetParam();
      auto config = ResolveConfig(path, ConfigDirFor(GetParam()));
      ASSERT_TRUE(config.ok()) << config.status();
      SdxlModels models = BuildSdxl(*config);
      auto status = LoadWeights(path, models);
      ASSERT_TRUE(status.ok()) << status;
      it = loaded.emplace(GetParam(), models).first;
    }
    models_ = it->second;
  }
  SdxlModels models_;
  torch::NoGradGuard no_grad_;
};

TEST_P(GoldenModels, TextEncodersMatchReference) {
  torch::Tensor ids1 = Golden("tokenizer.ids1").slice(0, 0, 3);
  torch::Tensor ids2 = Golden("tokenizer.ids2").slice(0, 0, 3);
  ClipOutput a = models_.text_encoder->forward(ids1);
  ClipOutput b = models_.text_encoder_2->forward(ids2);
  const std::pair<std::string, double> errors[] = {
      {"te.hidden1_penultimate", MaxAbsError(a.penultimate, Golden("te.hidden1_penultimate"))},
      {"te.hidden2_penultimate", MaxAbsError(b.penultimate, Golden("te.hidden2_penultimate"))},
      {"te.pooled2", MaxAbsError(b.pooled, Golden("te.pooled2"))},
      {"te.context", MaxAbsError(torch::cat({a.penultimate, b.penultimate}, -1), Golden("te.context"))}};
  for (const auto& [name, err] : errors) {
    EXPECT_LT(err, kTolerance) << name;
    std::printf("%s max abs error %.3g\n", name.c_str(), err);
  }
}

TEST_P(GoldenModels, UNetMatchesReference) {
  for (const auto& [name, t] : {std::pair<std::string, double>{"unet.a", 961}, {"unet.b", 1}}) {
    torch::Tensor out = models_.unet->forward(Golden(name + ".sample"), torch::full({1}, t),
                                              Golden(name + ".context"), Golden(name + ".text_embeds"),
                                              Golden(name + ".time_ids"));
    double err = MaxAbsError(out, Golden(name + ".out"));
    EXPECT_LT(err, kTolerance) << name;
    std::printf("%s max abs error %.3g\n", name.c_str(), err);
  }
}

// Deep cache: a shallow pass (conv_in, the first down level, the last up level) from the
// deep features a full pass kept at the same inputs is that full pass.
TEST_P(GoldenModels, AShallowPassFromItsOwnDeepFeaturesIsTheFullPass) {
  const torch::Tensor sample = Golden("unet.a.sample"), context = Golden("unet.a.context");
  const torch::Tensor pooled = Golden("unet.a.text_embeds"), time_ids = Golden("unet.a.time_ids");
  torch::Tensor deep;
  UNetConditioning keep;
  keep.keep_deep = &deep;
  const torch::Tensor full = models_.unet->forward(sample, torch::full({1}, 961.0), context, pooled, time_ids, keep);
  ASSERT_TRUE(deep.defined());
  EXPECT_LT(MaxAbsError(full, Golden("unet.a.out")), kTolerance);
  UNetConditioning reuse;
  reuse.reuse_deep = deep;
  EXPECT_LT(MaxAbsError(models_.unet->forward(sample, torch::full({1}, 961.0), context, pooled, time_ids, reuse), full), 1e-6);
  // At another timestep the shallow levels see it, the reused deep ones do not.
  const torch::Tensor later = models_.unet->forward(sample, torch::full({1}, 1.0), context, pooled, time_ids, reuse);
  EXPECT_GT(MaxAbsError(later, full), 0);
  EXPECT_GT(MaxAbsError(later, models_.unet->forward(sample, torch::full({1}, 1.0), context, pooled, time_ids)), 1e-6);
}

TEST_P(GoldenModels, VaeDecoderMatchesReference) {
  for (const std::string name : {"vae.a", "vae.b"}) {
    double err = MaxAbsError(models_.vae->decode(Golden(name + ".z")), Golden(name + ".out"));
    EXPECT_LT(err, kTolerance) << name;
    std::printf("%s max abs error %.3g\n", name.c_str(), err);
  }
}

// The GPU fast path runs the VAE in channels-last layout (LoadOptions::vae_channels_last): the
// same reference images, through the NHWC doubling and the attention's token views.
TEST_P(GoldenModels, VaeDecoderInChannelsLastMatchesReference) {
  ToChannelsLast(*models_.vae);
  for (const std::string name : {"vae.a", "vae.b"}) {
    const torch::Tensor image = models_.vae->decode(Golden(name + ".z").contiguous(at::MemoryFormat::ChannelsLast));
    EXPECT_TRUE(image.is_contiguous(at::MemoryFormat::ChannelsLast)) << name;
    EXPECT_LT(MaxAbsError(image, Golden(name + ".out")), kTolerance) << name;
  }
  for (auto& p : models_.vae->parameters()) p.set_data(p.contiguous());  // the models are shared
}

TEST_P(GoldenModels, VaeEncoderInvertsDecoderShape) {
  torch::Tensor image = Golden("vae.a.out");
  torch::Tensor latents = models_.vae->encode(image);
  EXPECT_EQ(latents.sizes(), Golden("vae.a.z").sizes());
  EXPECT_TRUE(torch::isfinite(latents).all().item<bool>());
}

// Tileable mode pads every 3x3 conv circularly, so the networks commute with a wrap-around
// shift (by a multiple of the UNet's downsampling factor): the images tile seamlessly.
TEST_P(GoldenModels, TileableModelsCommuteWithWrapAroundShifts) {
  auto shift = [](const torch::Tensor& t, int64_t by) { return torch::roll(t, {by, by}, {2, 3}); };
  const std::string u = "unet.b";
  auto unet = [&](const torch::Tensor& sample) {
    return models_.unet->forward(sample, torch::full({1}, 1.0), Golden(u + ".context"), Golden(u + ".text_embeds"),
                                 Golden(u + ".time_ids"));
  };
  torch::Tensor sample = Golden(u + ".sample"), z = Golden("vae.b.z");
  models_.unet->set_tiling(true);
  models_.vae->set_tiling(true);
  double unet_err = MaxAbsError(unet(shift(sample, 4)), shift(unet(sample), 4));
  double vae_err = MaxAbsError(models_.vae->decode(shift(z, 3)), shift(models_.vae->decode(z), 24));
  models_.unet->set_tiling(false);
  models_.vae->set_tiling(false);
  EXPECT_LT(unet_err, 1e-4);
  EXPECT_LT(vae_err, 1e-4);
  // Zero padding breaks the symmetry, so the switch really changes the computation.
  EXPECT_GT(MaxAbsError(unet(shift(sample, 4)), shift(unet(sample), 4)), 1e-3);
  EXPECT_LT(MaxAbsError(unet(sample), Golden(u + ".out")), kTolerance);
}

INSTANTIATE_TEST_SUITE_P(BothLayouts, GoldenModels,
                         ::testing::Values("tiny-sdxl.safetensors", "diffusers"),
                         [](const auto& info) { return info.param == "diffusers" ? "DiffusersFolder" : "SingleFile"; });

TEST(Checkpoint, BothLayoutsLoadIdenticalWeights) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  torch::NoGradGuard no_grad;
  const std::string dir = testing::GoldenDir();
  auto config = ResolveConfig(dir + "/diffusers", "");
  ASSERT_TRUE(config.ok());
  SdxlModels single = BuildSdxl(*config), folder = BuildSdxl(*config);
  ASSERT_TRUE(LoadWeights(dir + "/tiny-sdxl.safetensors", single).ok());
  ASSERT_TRUE(LoadWeights(dir + "/diffusers", folder).ok());
  auto compare = [](torch::nn::Module& a, torch::nn::Module& b) {
    auto pb = b.named_parameters(true);
    for (const auto& p : a.named_parameters(true)) {
      EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << p.key();
    }
  };
  compare(*single.text_encoder, *folder.text_encoder);
  compare(*single.text_encoder_2, *folder.text_encoder_2);
  compare(*single.unet, *folder.unet);
  compare(*single.vae, *folder.vae);
}

// The original-layout mapping covers the single file exactly: every key lands on a module
// parameter (or is one of the tensors the pipeline does not use), and every parameter is fed.
TEST(Checkpoint, EveryOriginalKeyMapsToAParameter) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  auto config = ResolveConfig(testing::GoldenDir() + "/diffusers", "");
  ASSERT_TRUE(config.ok());
  SdxlModels models = BuildSdxl(*config);
  std::map<Component, torch::nn::Module*> modules = {
      {Component::kTextEncoder, models.text_encoder.get()}, {Component::kTextEncoder2, models.text_encoder_2.get()},
      {Component::kUNet, models.unet.get()}, {Component::kVae, models.vae.get()}};
  std::map<Component, std::set<std::string>> fed;
  auto file = SafetensorsFile::Open(testing::GoldenDir() + "/tiny-sdxl.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  std::vector<std::string> unused;
  for (const TensorView& v : (*file)->tensors()) {
    auto mapped = MapOriginalKey(v.name, models.config);
    if (mapped.empty()) unused.push_back(v.name);
    for (const MappedKey& m : mapped) {
      EXPECT_NE(modules[m.component]->named_parameters(true).find(m.name), nullptr) << v.name << " -> " << m.name;
      EXPECT_TRUE(fed[m.component].insert(m.name).second) << m.name << " fed twice";
    }
  }
  for (const std::string& name : unused) {
    EXPECT_TRUE(name.find("position_ids") != std::string::npos || name.find("logit_scale") != std::string::npos) << name;
  }
  for (auto& [component, module] : modules) {
    EXPECT_EQ(fed[component].size(), module->named_parameters(true).size()) << ComponentFolder(component);
  }
}

TEST(Checkpoint, MissingAndCorruptFilesNameTheFile) {
  SPRITEFORGE_REQUIRE_GOLDEN_DIR();
  auto config = ResolveConfig("/nonexistent/model.safetensors", "");
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.status().message().find("/nonexistent/model.safetensors"), std::string::npos);

  // A checkpoint of another architecture: wider text encoder than the file holds.
  auto tiny = ResolveConfig(testing::GoldenDir() + "/diffusers", "");
  ASSERT_TRUE(tiny.ok());
  SdxlConfig wider = *tiny;
  wider.text_encoder.hidden_size = 64;
  SdxlModels mismatched = BuildSdxl(wider);
  auto status = LoadWeights(testing::GoldenDir() + "/tiny-sdxl.safetensors", mismatched);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("does not match"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("tiny-sdxl.safetensors"), std::string::npos) << status.message();
}

}  // namespace
}  // namespace spriteforge::engine
