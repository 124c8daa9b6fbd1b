// OpenPose body poses as control images for openpose ControlNets: 18 keypoints in the
// OpenPose / COCO-18 order, drawn the way ControlNet's openpose preprocessor draws them.
#pragma once

#include <array>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "common/png.h"

namespace spriteforge::control {

inline constexpr int kBodyKeypoints = 18;
// nose, neck, r_shoulder, r_elbow, r_wrist, l_shoulder, l_elbow, l_wrist, r_hip, r_knee,
// r_ankle, l_hip, l_knee, l_ankle, r_eye, l_eye, r_ear, l_ear ("r": the person's right).
extern const std::array<const char*, kBodyKeypoints> kBodyKeypointNames;

// A point in canvas fractions: (0, 0) the top-left corner, (1, 1) the bottom-right.
struct Keypoint {
  double x = 0, y = 0;
};
// An absent keypoint (not seen, e.g. the face from behind) draws nothing, nor its limbs.
using BodyPose = std::array<std::optional<Keypoint>, kBodyKeypoints>;

// On black: the 17 limbs as ellipses about 9 pixels thick (stick width 4) in their colour at
// 60% (a later limb covers an earlier one), then each keypoint as a disc of radius 4 in its
// colour, as controlnet_aux's draw_bodypose (ControlNet 1.1) draws them. Canvas pixels per
// keypoint unit: width across, height down, so a square canvas keeps the pose's shape.
// Sizes 1..8192 per side.
absl::StatusOr<RasterImage> DrawPose(const BodyPose& pose, int width, int height);

// Keypoints from JSON, either
//   {"keypoints": [[x, y], null, ...18 entries], "canvas": [w, h]}   (our pose files), or
//   {"people": [{"pose_keypoints_2d": [x, y, confidence, ... 54 numbers]}],
//    "canvas_width": w, "canvas_height": h}                           (OpenPose's JSON).
// Coordinates are canvas fractions, or pixels of `canvas` when it is given; null, negative
// coordinates and OpenPose's confidence 0 mean absent.
absl::StatusOr<BodyPose> ParseBodyPose(const nlohmann::json& doc);

}  // namespace spriteforge::control
