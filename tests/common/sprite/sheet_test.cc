#include "common/sprite/sheet.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "common/sprite/background.h"
#include "common/text.h"
#include "tests/common/sprite/fixtures.h"

namespace spriteforge::postprocess {
namespace {

std::vector<Frame> Frames() {
  std::vector<Frame> frames;
  for (int i = 0; i < 7; ++i) {
    RasterImage im = testing::Gradient(8 + 3 * i, 6 + 5 * (i % 3));
    im.at(0, 0)[0] = uint8_t(i);  // distinct frames
    frames.push_back({"frame_" + std::to_string(i), im});
  }
  return frames;
}

// Every atlas rectangle cut out of the sheet equals its frame.
void ExpectAtlasMatches(const Sheet& sheet, const std::vector<Frame>& frames) {
  EXPECT_EQ(sheet.atlas["meta"]["size"]["w"], sheet.image.width);
  EXPECT_EQ(sheet.atlas["meta"]["size"]["h"], sheet.image.height);
  EXPECT_EQ(sheet.atlas["meta"]["format"], "RGBA8888");
  for (const Frame& f : frames) {
    const auto& r = sheet.atlas["frames"][f.name]["frame"];
    ASSERT_EQ(r["w"], f.image.width);
    ASSERT_EQ(r["h"], f.image.height);
    const RasterImage rgba = ToRgba(f.image);
    for (int y = 0; y < f.image.height; ++y) {
      for (int x = 0; x < f.image.width; ++x) {
        const uint8_t* got = sheet.image.at(r["x"].get<int>() + x, r["y"].get<int>() + y);
        ASSERT_TRUE(std::equal(got, got + 4, rgba.at(x, y))) << f.name << " at " << x << "," << y;
      }
    }
  }
}

bool Overlap(const Rect& a, const Rect& b) {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

TEST(SheetTest, GridAndTightAtlasesMatchTheSheet) {
  const auto frames = Frames();
  for (SheetLayout layout : {SheetLayout::kGrid, SheetLayout::kTight}) {
    auto sheet = PackSheet(frames, layout, 0, "sheet.png");
    ASSERT_TRUE(sheet.ok());
    ExpectAtlasMatches(*sheet, frames);
    for (size_t i = 0; i < sheet->rects.size(); ++i)
      for (size_t j = i + 1; j < sheet->rects.size(); ++j) EXPECT_FALSE(Overlap(sheet->rects[i], sheet->rects[j]));
  }
}

TEST(SheetTest, GridUsesTheRequestedColumnsAndTightIsSmaller) {
  const auto frames = Frames();
  auto grid = PackSheet(frames, SheetLayout::kGrid, 7, "s.png");
  EXPECT_EQ(grid->image.height, 16);  // one row of the tallest frame
  auto tight = PackSheet(frames, SheetLayout::kTight, 0, "s.png");
  auto square = PackSheet(frames, SheetLayout::kGrid, 0, "s.png");
  EXPECT_LT(tight->image.width * tight->image.height, square->image.width * square->image.height);
}

TEST(SheetTest, RejectsEmptyAndDuplicateFrames) {
  EXPECT_FALSE(PackSheet({}, SheetLayout::kGrid, 0, "s.png").ok());
  auto frames = Frames();
  frames[1].name = frames[0].name;
  EXPECT_FALSE(PackSheet(frames, SheetLayout::kGrid, 0, "s.png").ok());
}

}  // namespace
}  // namespace spriteforge::postprocess

namespace spriteforge::postprocess {
namespace {

TEST(NaturalLessTest, NumbersInNamesCompareByValue) {
  std::vector<std::string> names = {"10_110.png", "2_102.png", "1_101.png", "walk_10.png", "walk_9.png",
                                    "0_100.png",  "11_111.png", "walk.png"};
  std::sort(names.begin(), names.end(), NaturalLess);
  EXPECT_EQ(names, (std::vector<std::string>{"0_100.png", "1_101.png", "2_102.png", "10_110.png", "11_111.png",
                                             "walk.png", "walk_9.png", "walk_10.png"}));
  EXPECT_TRUE(NaturalLess("frame_007", "frame_10"));
  EXPECT_FALSE(NaturalLess("a", "a"));
}

}  // namespace
}  // namespace spriteforge::postprocess
