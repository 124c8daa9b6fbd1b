#include "common/sprite/palette.h"

#include <gtest/gtest.h>

#include <set>

#include "tests/common/sprite/fixtures.h"

namespace spriteforge::postprocess {
namespace {

using testing::Gradient;

std::set<uint32_t> Colours(const RasterImage& im) {
  std::set<uint32_t> out;
  for (size_t i = 0; i < size_t(im.width) * im.height; ++i) {
    const uint8_t* p = &im.pixels[i * im.channels];
    if (im.channels == 4 && p[3] < 128) continue;
    out.insert((uint32_t(p[0]) << 16) | (uint32_t(p[1]) << 8) | p[2]);
  }
  return out;
}

std::set<uint32_t> Colours(const Palette& p) {
  std::set<uint32_t> out;
  for (const Rgb& c : p.colors) out.insert((uint32_t(c[0]) << 16) | (uint32_t(c[1]) << 8) | c[2]);
  return out;
}

TEST(PaletteTest, BuiltinPalettesHaveTheirSizes) {
  EXPECT_EQ(BuiltinPalette("pico8")->colors.size(), 16u);
  EXPECT_EQ(BuiltinPalette("gameboy")->colors.size(), 4u);
  EXPECT_EQ(BuiltinPalette("nes")->colors.size(), 55u);
  EXPECT_EQ(BuiltinPalette("pico8")->colors[8], (Rgb{0xFF, 0x00, 0x4D}));
  auto unknown = BuiltinPalette("c64");
  EXPECT_NE(std::string(unknown.status().message()).find("unknown palette \"c64\""), std::string::npos);
}

TEST(PaletteTest, EveryOpaquePixelIsInThePaletteWithEachDither) {
  const RasterImage im = Gradient(64, 48);
  for (const char* name : {"pico8", "gameboy", "nes"}) {
    const Palette p = *BuiltinPalette(name);
    for (Dither d : {Dither::kNone, Dither::kBayer, Dither::kFloydSteinberg}) {
      const auto used = Colours(Quantize(im, p, d));
      for (uint32_t c : used) EXPECT_TRUE(Colours(p).count(c)) << name << " " << std::hex << c;
    }
  }
}

TEST(PaletteTest, QuantizingTwiceChangesNothing) {
  const RasterImage im = Gradient(64, 48);
  for (Quantizer q : {Quantizer::kMedianCut, Quantizer::kKMeans}) {
    const Palette p = DerivePalette(im, 8, q);
    EXPECT_LE(p.colors.size(), 8u);
    EXPECT_GE(p.colors.size(), 6u);
    const RasterImage once = Quantize(im, p, Dither::kNone);
    EXPECT_LE(Colours(once).size(), 8u);
    const RasterImage twice = Quantize(once, DerivePalette(once, 8, q), Dither::kNone);
    EXPECT_EQ(once.pixels, twice.pixels);
    EXPECT_EQ(Quantize(once, p, Dither::kFloydSteinberg).pixels, once.pixels);
  }
}

TEST(PaletteTest, ReadsHexAndGimpPalettes) {
  auto hex = ParsePaletteText("#ff0000\n00FF00\n\n0000ff\n", PaletteFormat::kHex);
  ASSERT_TRUE(hex.ok());
  EXPECT_EQ(hex->colors.size(), 3u);
  EXPECT_EQ(hex->colors[1], (Rgb{0, 255, 0}));
  auto gpl = ParsePaletteText("GIMP Palette\nName: test\nColumns: 2\n# comment\n255 0 0 Red\n  0 0 255\tBlue\n",
                              PaletteFormat::kGpl);
  ASSERT_TRUE(gpl.ok()) << gpl.status();
  EXPECT_EQ(gpl->colors.size(), 2u);
  EXPECT_EQ(gpl->colors[1], (Rgb{0, 0, 255}));
  EXPECT_FALSE(ParsePaletteText("ff00\n", PaletteFormat::kHex).ok());
  EXPECT_FALSE(ParsePaletteText("255 0 0\n", PaletteFormat::kGpl).ok());
  EXPECT_FALSE(ParsePaletteText("GIMP Palette\n300 0 0\n", PaletteFormat::kGpl).ok());
  EXPECT_FALSE(ParsePaletteText("", PaletteFormat::kHex).ok());
}

TEST(PaletteTest, TransparentPixelsAreLeftAlone) {
  RasterImage im{2, 1, 4, {10, 20, 30, 0, 200, 10, 10, 255}};
  const RasterImage out = Quantize(im, *BuiltinPalette("gameboy"), Dither::kNone);
  EXPECT_EQ(out.pixels[0], 10);
  EXPECT_EQ(out.pixels[3], 0);
  EXPECT_TRUE(Colours(*BuiltinPalette("gameboy")).count((uint32_t(out.pixels[4]) << 16) | (out.pixels[5] << 8) | out.pixels[6]));
}

}  // namespace
}  // namespace spriteforge::postprocess
