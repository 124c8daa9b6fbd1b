#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/sprite/control/pose.h"
#include "common/sprite/control/pose_library.h"

namespace spriteforge::control {
namespace {

using Pixel = std::array<uint8_t, 3>;

Pixel At(const RasterImage& image, int x, int y) {
  const uint8_t* p = image.at(x, y);
  return {p[0], p[1], p[2]};
}

// Nose above the neck, the right shoulder to the image's left: three keypoints, two limbs.
BodyPose HeadAndShoulder() {
  BodyPose pose;
  pose[0] = Keypoint{0.5, 0.125};   // nose at pixel (32, 8) of 64x64
  pose[1] = Keypoint{0.5, 0.375};   // neck (32, 24)
  pose[2] = Keypoint{0.125, 0.375}; // r_shoulder (8, 24)
  return pose;
}

TEST(DrawPoseTest, KeypointsAndLimbsHaveOpenPoseColoursOnBlack) {
  auto image = DrawPose(HeadAndShoulder(), 64, 64);
  ASSERT_TRUE(image.ok()) << image.status();
  ASSERT_EQ(image->channels, 3);
  EXPECT_EQ(At(*image, 32, 8), (Pixel{255, 0, 0})) << "nose";
  EXPECT_EQ(At(*image, 32, 24), (Pixel{255, 85, 0})) << "neck";
  EXPECT_EQ(At(*image, 8, 24), (Pixel{255, 170, 0})) << "right shoulder";
  EXPECT_EQ(At(*image, 20, 24), (Pixel{153, 0, 0})) << "neck to right shoulder: the first limb's red at 60%";
  EXPECT_EQ(At(*image, 32, 16), (Pixel{0, 0, 153})) << "neck to nose: the 13th limb's blue at 60%";
  EXPECT_EQ(At(*image, 20, 29), (Pixel{0, 0, 0})) << "stick width 4: 5 pixels off the limb is black";
  for (auto [x, y] : {std::pair{0, 0}, {63, 0}, {0, 63}, {63, 63}, {48, 48}}) {
    EXPECT_EQ(At(*image, x, y), (Pixel{0, 0, 0})) << x << "," << y;
  }
}

TEST(DrawPoseTest, AMissingKeypointDrawsNeitherItselfNorItsLimbs) {
  BodyPose pose = HeadAndShoulder();
  pose[2].reset();
  auto image = DrawPose(pose, 64, 64);
  ASSERT_TRUE(image.ok());
  EXPECT_EQ(At(*image, 8, 24), (Pixel{0, 0, 0}));
  EXPECT_EQ(At(*image, 20, 24), (Pixel{0, 0, 0}));
  EXPECT_EQ(At(*image, 32, 16), (Pixel{0, 0, 153})) << "the other limb stays";
  EXPECT_FALSE(DrawPose(pose, 0, 64).ok());
}

TEST(PoseLibraryTest, TheWalkCycleHasFourFramesInEightDirections) {
  auto poses = LoadPoseSet("builtin:walk-8dir");
  ASSERT_TRUE(poses.ok()) << poses.status();
  ASSERT_EQ(poses->size(), 32u);
  const char* directions[] = {"s", "sw", "w", "nw", "n", "ne", "e", "se"};
  for (size_t i = 0; i < poses->size(); ++i) {
    const NamedPose& p = (*poses)[i];
    EXPECT_EQ(p.direction, directions[i / 4]);
    EXPECT_EQ(p.frame, int(i % 4));
    EXPECT_EQ(p.name, "walk_" + p.direction + "_" + std::to_string(p.frame));
  }
  const BodyPose& front = (*poses)[0].keypoints;
  const BodyPose& back = (*poses)[16].keypoints;
  for (const auto& k : front) EXPECT_TRUE(k.has_value()) << "facing the viewer, every keypoint shows";
  EXPECT_FALSE(back[0] || back[14] || back[15]) << "from behind: no nose, no eyes";
  EXPECT_LT(front[2]->x, front[5]->x) << "facing the viewer, the right shoulder is on the image's left";
  EXPECT_GT(back[2]->x, back[5]->x);
  EXPECT_NE((*poses)[0].keypoints[10]->y, (*poses)[2].keypoints[10]->y) << "the feet move between frames";
}

TEST(PoseLibraryTest, BuiltinSetsAreListedAndOthersRefused) {
  const std::vector<std::string> sets = ListPoseSets();
  for (const char* name : {"builtin:idle", "builtin:idle-4dir", "builtin:idle-8dir", "builtin:walk-4dir"}) {
    EXPECT_NE(std::find(sets.begin(), sets.end(), name), sets.end()) << name;
  }
  auto idle = LoadPoseSet("builtin:idle-4dir");
  ASSERT_TRUE(idle.ok());
  EXPECT_EQ(idle->size(), 4u);
  EXPECT_EQ((*idle)[1].name, "idle_w");
  auto unknown = LoadPoseSet("builtin:run-8dir");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("builtin:walk-8dir"), std::string::npos) << unknown.status();
  EXPECT_FALSE(LoadBuiltinPoseSet("builtin:../poses/walk-8dir").ok());
}

TEST(PoseLibraryTest, PoseFilesGiveFractionsFromPixelsOrOpenPoseJson) {
  nlohmann::json keypoints = nlohmann::json::array();
  for (int i = 0; i < 18; ++i) keypoints.push_back(i == 3 ? nlohmann::json() : nlohmann::json{100 + i, 50});
  auto ours = ParsePoseSet({{"keypoints", keypoints}, {"canvas", {200, 100}}}, "wave");
  ASSERT_TRUE(ours.ok()) << ours.status();
  ASSERT_EQ(ours->size(), 1u);
  EXPECT_EQ((*ours)[0].name, "wave");
  EXPECT_DOUBLE_EQ((*ours)[0].keypoints[1]->x, 0.505);
  EXPECT_DOUBLE_EQ((*ours)[0].keypoints[1]->y, 0.5);
  EXPECT_FALSE((*ours)[0].keypoints[3]);

  nlohmann::json flat = nlohmann::json::array();
  for (int i = 0; i < 18; ++i) flat.insert(flat.end(), {10.0 * i, 20.0, i == 0 ? 0.0 : 0.9});
  auto openpose = ParsePoseSet({{"people", {{{"pose_keypoints_2d", flat}}}}, {"canvas_width", 400}, {"canvas_height", 40}}, "op");
  ASSERT_TRUE(openpose.ok()) << openpose.status();
  EXPECT_FALSE((*openpose)[0].keypoints[0]) << "confidence 0: absent";
  EXPECT_DOUBLE_EQ((*openpose)[0].keypoints[2]->x, 0.05);
  EXPECT_DOUBLE_EQ((*openpose)[0].keypoints[2]->y, 0.5);

  keypoints.erase(keypoints.end() - 1);
  auto short_list = ParsePoseSet({{"keypoints", keypoints}}, "x");
  ASSERT_FALSE(short_list.ok());
  EXPECT_NE(short_list.status().message().find("18 entries"), std::string::npos);
  auto doubled = ParsePoseSet({{"poses", {{{"name", "a"}, {"keypoints", nlohmann::json::array()}}}}}, "x");
  EXPECT_FALSE(doubled.ok());
}

TEST(PoseLibraryTest, AFolderOfPoseFilesLoadsInNaturalOrder) {
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / "pose_folder";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  nlohmann::json keypoints = nlohmann::json::array();
  for (int i = 0; i < 18; ++i) keypoints.push_back({0.5, 0.05 * i});
  for (const char* stem : {"step10", "step2"}) std::ofstream(dir / (std::string(stem) + ".json")) << nlohmann::json{{"keypoints", keypoints}};
  std::ofstream(dir / "notes.txt") << "not a pose";
  auto poses = LoadPoseSet(dir.string());
  ASSERT_TRUE(poses.ok()) << poses.status();
  ASSERT_EQ(poses->size(), 2u);
  EXPECT_EQ((*poses)[0].name, "step2");
  EXPECT_EQ((*poses)[1].name, "step10");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace spriteforge::control
