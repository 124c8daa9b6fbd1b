#include "common/png.h"

#include <gtest/gtest.h>

namespace spriteforge {
namespace {

RasterImage Gradient(int w, int h, int channels) {
  RasterImage img{w, h, channels, std::vector<uint8_t>(static_cast<size_t>(w) * h * channels)};
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < channels; ++c) img.at(x, y)[c] = static_cast<uint8_t>(x * 7 + y * 3 + c * 50);
  return img;
}

TEST(Png, RoundTripsRgbAndTextChunk) {
  RasterImage img = Gradient(13, 7, 3);
  auto bytes = EncodePng(img, {{"parameters", "knight\nSteps: 4, Seed: 42"}});
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  PngText text;
  auto back = DecodePng(*bytes, &text);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->width, 13);
  EXPECT_EQ(back->height, 7);
  EXPECT_EQ(back->channels, 3);
  EXPECT_EQ(back->pixels, img.pixels);
  ASSERT_EQ(text.size(), 1u);
  EXPECT_EQ(text[0].first, "parameters");
  EXPECT_EQ(text[0].second, "knight\nSteps: 4, Seed: 42");
}

TEST(Png, RoundTripsRgba) {
  RasterImage img = Gradient(5, 9, 4);
  auto back = DecodePng(*EncodePng(img));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->channels, 4);
  EXPECT_EQ(back->pixels, img.pixels);
}

TEST(Png, RejectsGarbageAndTruncation) {
  EXPECT_FALSE(DecodePng("hello").ok());
  std::string bytes = *EncodePng(Gradient(16, 16, 3));
  for (size_t cut : {8ul, 20ul, 40ul, bytes.size() / 2, bytes.size() - 13}) {
    auto r = DecodePng(bytes.substr(0, cut));
    EXPECT_FALSE(r.ok()) << "cut at " << cut;
  }
}

TEST(Png, EncodeRejectsMismatchedBuffer) {
  RasterImage img{4, 4, 3, std::vector<uint8_t>(10)};
  EXPECT_FALSE(EncodePng(img).ok());
}

}  // namespace
}  // namespace spriteforge
