#include "common/sprite/control/pose.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace spriteforge::control {

const std::array<const char*, kBodyKeypoints> kBodyKeypointNames = {
    "nose",  "neck",   "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist", "r_hip",
    "r_knee", "r_ankle", "l_hip",   "l_knee",  "l_ankle", "r_eye",      "l_eye",   "r_ear",   "l_ear"};

namespace {

using Colour = std::array<uint8_t, 3>;

// OpenPose's limb pairs (keypoint indices) and the colours of limbs and keypoints.
constexpr int kLimbs[17][2] = {{1, 2},  {1, 5},   {2, 3},   {3, 4},  {5, 6},   {6, 7},  {1, 8},  {8, 9},  {9, 10},
                               {1, 11}, {11, 12}, {12, 13}, {1, 0},  {0, 14},  {14, 16}, {0, 15}, {15, 17}};
constexpr Colour kColours[kBodyKeypoints] = {
    {255, 0, 0},   {255, 85, 0},  {255, 170, 0}, {255, 255, 0}, {170, 255, 0}, {85, 255, 0},
    {0, 255, 0},   {0, 255, 85},  {0, 255, 170}, {0, 255, 255}, {0, 170, 255}, {0, 85, 255},
    {0, 0, 255},   {85, 0, 255},  {170, 0, 255}, {255, 0, 255}, {255, 0, 170}, {255, 0, 85}};
constexpr int kStickWidth = 4, kKeypointRadius = 4;

void Paint(RasterImage& canvas, int x, int y, const Colour& c) {
  if (x < 0 || y < 0 || x >= canvas.width || y >= canvas.height) return;
  std::copy(c.begin(), c.end(), canvas.at(x, y));
}

// A filled ellipse centred on pixel (cx, cy) with semi-axes a (along `angle` radians) and b.
// OpenCV fills the 1-degree polygon of cv2.ellipse2Poly and also draws its outline, which
// covers about 0.6 pixel more on every side: so does this (to within 2% of the pixels).
void FillEllipse(RasterImage& canvas, int cx, int cy, double a, double b, double angle, const Colour& c) {
  constexpr double kOutline = 0.6;
  a = std::max(a, 0.0) + kOutline, b += kOutline;
  const double ca = std::cos(angle), sa = std::sin(angle);
  const int reach = int(std::ceil(std::max(a, b)));
  for (int y = cy - reach; y <= cy + reach; ++y) {
    for (int x = cx - reach; x <= cx + reach; ++x) {
      const double dx = x - cx, dy = y - cy;
      const double u = (dx * ca + dy * sa) / a, v = (-dx * sa + dy * ca) / b;
      if (u * u + v * v <= 1.0 + 1e-9) Paint(canvas, x, y, c);
    }
  }
}

void FillCircle(RasterImage& canvas, int cx, int cy, int r, const Colour& c) {
  for (int y = cy - r; y <= cy + r; ++y) {
    for (int x = cx - r; x <= cx + r; ++x) {
      if ((x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r) Paint(canvas, x, y, c);
    }
  }
}

// 60% of the colour: the limb at 60% opacity over the black canvas. Like draw_bodypose, a
// later limb covers an earlier one rather than mixing with it.
Colour Dimmed(const Colour& c) {
  return {uint8_t(c[0] * 6 / 10), uint8_t(c[1] * 6 / 10), uint8_t(c[2] * 6 / 10)};
}

bool Present(const std::optional<Keypoint>& k) { return k && k->x >= 0 && k->y >= 0; }

absl::StatusOr<double> Coordinate(const nlohmann::json& v, int index) {
  if (!v.is_number()) {
    return absl::InvalidArgumentError(
        absl::StrCat("keypoint ", index, " (", kBodyKeypointNames[index], "): coordinates must be numbers"));
  }
  const double d = v.get<double>();
  if (!std::isfinite(d) || std::abs(d) > 1e6) {
    return absl::InvalidArgumentError(absl::StrCat("keypoint ", index, ": coordinate out of range"));
  }
  return d;
}

// `canvas` [w, h] or canvas_width/canvas_height: pixel coordinates to fractions.
absl::Status Normalise(BodyPose& pose, double w, double h) {
  if (!(w >= 1 && h >= 1 && w <= 1e5 && h <= 1e5)) return absl::InvalidArgumentError("canvas: need [width, height] in pixels");
  for (auto& k : pose) {
    if (Present(k)) k->x /= w, k->y /= h;
  }
  return absl::OkStatus();
}

absl::StatusOr<BodyPose> ParseOpenPose(const nlohmann::json& doc) {
  const auto& people = doc["people"];
  if (!people.is_array() || people.empty() || !people[0].is_object() ||
      !people[0].contains("pose_keypoints_2d") || !people[0]["pose_keypoints_2d"].is_array() ||
      people[0]["pose_keypoints_2d"].size() != 3 * kBodyKeypoints) {
    return absl::InvalidArgumentError("people[0].pose_keypoints_2d: need 54 numbers (x, y, confidence) x 18");
  }
  const auto& flat = people[0]["pose_keypoints_2d"];
  BodyPose pose;
  for (int i = 0; i < kBodyKeypoints; ++i) {
    ASSIGN_OR_RETURN(const double x, Coordinate(flat[3 * i], i));
    ASSIGN_OR_RETURN(const double y, Coordinate(flat[3 * i + 1], i));
    ASSIGN_OR_RETURN(const double c, Coordinate(flat[3 * i + 2], i));
    if (c > 0) pose[i] = Keypoint{x, y};
  }
  if (doc.contains("canvas_width") || doc.contains("canvas_height")) {
    const double w = doc.value("canvas_width", 0.0), h = doc.value("canvas_height", 0.0);
    RETURN_IF_ERROR(Normalise(pose, w, h));
  }
  return pose;
}

}  // namespace

absl::StatusOr<RasterImage> DrawPose(const BodyPose& pose, int width, int height) {
  if (width < 1 || height < 1 || width > 8192 || height > 8192) {
    return absl::InvalidArgumentError(absl::StrCat("pose canvas ", width, "x", height, " out of range 1..8192"));
  }
  RasterImage canvas{width, height, 3, std::vector<uint8_t>(size_t(width) * height * 3, 0)};
  for (int l = 0; l < 17; ++l) {
    const auto& p = pose[kLimbs[l][0]];
    const auto& q = pose[kLimbs[l][1]];
    if (!Present(p) || !Present(q)) continue;
    const double x0 = p->x * width, y0 = p->y * height, x1 = q->x * width, y1 = q->y * height;
    const double length = std::hypot(x1 - x0, y1 - y0);
    // draw_bodypose truncates the centre, the half length and the angle (whole degrees).
    const double degrees = std::trunc(std::atan2(y0 - y1, x0 - x1) * 180.0 / M_PI);
    FillEllipse(canvas, int((x0 + x1) / 2), int((y0 + y1) / 2), std::trunc(length / 2), kStickWidth,
                degrees * M_PI / 180.0, Dimmed(kColours[l]));
  }
  for (int i = 0; i < kBodyKeypoints; ++i) {
    if (Present(pose[i])) FillCircle(canvas, int(pose[i]->x * width), int(pose[i]->y * height), kKeypointRadius, kColours[i]);
  }
  return canvas;
}

absl::StatusOr<BodyPose> ParseBodyPose(const nlohmann::json& doc) {
  if (!doc.is_object()) return absl::InvalidArgumentError("a pose must be a JSON object");
  if (doc.contains("people")) return ParseOpenPose(doc);
  if (!doc.contains("keypoints") || !doc["keypoints"].is_array() || doc["keypoints"].size() != kBodyKeypoints) {
    return absl::InvalidArgumentError("keypoints: need 18 entries, [x, y] or null, in OpenPose order");
  }
  BodyPose pose;
  for (int i = 0; i < kBodyKeypoints; ++i) {
    const auto& k = doc["keypoints"][i];
    if (k.is_null()) continue;
    if (!k.is_array() || k.size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("keypoint ", i, " (", kBodyKeypointNames[i], "): need [x, y] or null"));
    }
    ASSIGN_OR_RETURN(const double x, Coordinate(k[0], i));
    ASSIGN_OR_RETURN(const double y, Coordinate(k[1], i));
    if (x >= 0 && y >= 0) pose[i] = Keypoint{x, y};
  }
  if (doc.contains("canvas")) {
    const auto& c = doc["canvas"];
    if (!c.is_array() || c.size() != 2 || !c[0].is_number() || !c[1].is_number()) {
      return absl::InvalidArgumentError("canvas: need [width, height] in pixels");
    }
    RETURN_IF_ERROR(Normalise(pose, c[0].get<double>(), c[1].get<double>()));
  }
  return pose;
}

}  // namespace spriteforge::control
