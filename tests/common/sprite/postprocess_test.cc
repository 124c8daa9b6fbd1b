#include "common/sprite/postprocess.h"

#include <gtest/gtest.h>

#include <set>

#include "tests/common/sprite/fixtures.h"

namespace spriteforge::postprocess {
namespace {

TEST(PostprocessTest, ManifestSectionRunsEveryStep) {
  auto options = ParsePostprocessOptions(nlohmann::json::parse(
      R"({"background": "flood", "tolerance": 0.05, "pixelate": "32x32", "method": "majority",
          "palette": "pico8", "crop": true, "padding": 1})"));
  ASSERT_TRUE(options.ok()) << options.status();
  auto sprite = RunPostprocess(testing::Disc(512, 128), *options);
  ASSERT_TRUE(sprite.ok());
  EXPECT_EQ(sprite->channels, 4);
  EXPECT_EQ(sprite->width, 16 + 2);  // the disc spans half the grid, plus padding
  EXPECT_EQ(sprite->at(0, 0)[3], 0);
  const auto pico8 = BuiltinPalette("pico8")->colors;
  for (int y = 0; y < sprite->height; ++y)
    for (int x = 0; x < sprite->width; ++x) {
      const uint8_t* p = sprite->at(x, y);
      if (p[3] == 0) continue;
      EXPECT_NE(std::find(pico8.begin(), pico8.end(), Rgb{p[0], p[1], p[2]}), pico8.end());
    }
}

TEST(PostprocessTest, DerivedColoursAndEmptySections) {
  auto options = ParsePostprocessOptions(nlohmann::json::parse(R"({"colors": 4, "quantizer": "median_cut"})"));
  ASSERT_TRUE(options.ok());
  auto out = RunPostprocess(testing::Gradient(32, 32), *options);
  std::set<uint32_t> colours;
  for (size_t i = 0; i < 32 * 32; ++i) colours.insert(out->pixels[i * 3] << 16 | out->pixels[i * 3 + 1] << 8 | out->pixels[i * 3 + 2]);
  EXPECT_LE(colours.size(), 4u);
  EXPECT_TRUE(ParsePostprocessOptions(nlohmann::json::object())->empty());
}

TEST(PostprocessTest, BadSectionsNameTheField) {
  struct Case { const char* json; const char* message; };
  const Case cases[] = {
      {R"({"palette": "c64"})", "postprocess.palette: unknown palette \"c64\""},
      {R"({"pixelate": "big"})", "postprocess.pixelate: expected WxH"},
      {R"({"dither": "noise"})", "postprocess.dither: unknown dither \"noise\""},
      {R"({"colors": 1})", "postprocess.colors: must be 2..256"},
      {R"({"palette": "pico8", "colors": 8})", "postprocess.colors: give either palette or colors"},
      {R"({"outline": true})", "postprocess.outline: unknown field"},
      {R"({"palette": "/nonexistent/pal.hex"})", "postprocess.palette: "},
      {R"({"tolerance": 3})", "postprocess.tolerance: must be in 0..1"},
      {R"([1, 2])", "postprocess: must be a mapping"},
  };
  for (const Case& c : cases) {
    auto options = ParsePostprocessOptions(nlohmann::json::parse(c.json));
    ASSERT_FALSE(options.ok()) << c.json;
    EXPECT_NE(std::string(options.status().message()).find(c.message), std::string::npos) << options.status();
  }
}

}  // namespace
}  // namespace spriteforge::postprocess
