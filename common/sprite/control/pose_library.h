// Named pose sets for sprite sets: the built-in ones shipped in common/sprite/data/poses
// (made by make_poses.py there) and the user's own pose files.
//
//   builtin:idle                standing, facing the viewer: idle_s
//   builtin:idle-4dir, -8dir    standing in 4 (s w n e) or 8 (s sw w nw n ne e se) directions:
//                               idle_s, idle_sw, ...
//   builtin:walk-4dir, -8dir    a 4-frame walk cycle per direction: walk_s_0 .. walk_s_3, ...
//
// Directions are where the character faces on screen: s towards the viewer, e to the
// image's right, n away. Built-in keypoints are fractions of a square canvas.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "common/sprite/control/pose.h"

namespace spriteforge::control {

struct NamedPose {
  std::string name;       // "walk_se_2"; a pose file's "name", else its file name
  std::string direction;  // "se"; empty when the pose file names none
  int frame = 0;
  BodyPose keypoints;
};

// "builtin:idle", "builtin:idle-4dir", ... in name order; empty when the shipped poses are
// not found.
std::vector<std::string> ListPoseSets();

// A built-in set ("builtin:walk-8dir"), or a pose file or a folder of them (every *.json
// in natural name order). Only for local commands: a server must not read paths its
// callers name, so it calls LoadBuiltinPoseSet or ParsePoseSet on uploaded text.
absl::StatusOr<std::vector<NamedPose>> LoadPoseSet(const std::string& name_or_path);
absl::StatusOr<std::vector<NamedPose>> LoadBuiltinPoseSet(const std::string& name);

// One pose file's JSON: a pose ({"name", "keypoints", "canvas"?, "direction"?, "frame"?},
// or OpenPose's {"people": ...}), or a set ({"name", "poses": [pose, ...]}). A pose without
// a name is called `default_name` (a set's poses: `default_name`_<index>).
absl::StatusOr<std::vector<NamedPose>> ParsePoseSet(const nlohmann::json& doc, const std::string& default_name);

// Where the built-in sets were found: PREFIX/share/spriteforge/poses beside the running
// program, the configured install prefix's, else the source tree's (a build folder's programs).
absl::StatusOr<std::string> BuiltinPoseDir();

}  // namespace spriteforge::control
