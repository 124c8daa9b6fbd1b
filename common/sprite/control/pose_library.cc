#include "common/sprite/control/pose_library.h"

#include <algorithm>
#include <filesystem>
#include <set>
#include <system_error>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "common/text.h"

namespace spriteforge::control {
namespace fs = std::filesystem;
namespace {

constexpr char kBuiltin[] = "builtin:";
constexpr size_t kMaxPoses = 4096;  // a sprite set, not a data set

std::vector<fs::path> CandidateDirs() {
  std::vector<fs::path> dirs;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) dirs.push_back(exe.parent_path().parent_path() / "share" / "spriteforge" / "poses");
  dirs.push_back(SPRITEFORGE_POSES_INSTALL_DIR);
  dirs.push_back(SPRITEFORGE_POSES_SOURCE_DIR);
  return dirs;
}

absl::StatusOr<NamedPose> ParseOnePose(const nlohmann::json& doc, const std::string& default_name) {
  ASSIGN_OR_RETURN(BodyPose keypoints, ParseBodyPose(doc));
  NamedPose pose{default_name, "", 0, std::move(keypoints)};
  if (doc.contains("name")) {
    if (!doc["name"].is_string() || !IsSafeName(doc["name"].get<std::string>())) {
      return absl::InvalidArgumentError("name: need 1..128 characters of A-Z a-z 0-9 . _ -");
    }
    pose.name = doc["name"].get<std::string>();
  }
  if (doc.contains("direction")) {
    if (!doc["direction"].is_string() || !IsSafeName(doc["direction"].get<std::string>(), 16)) {
      return absl::InvalidArgumentError(absl::StrCat(pose.name, ": direction: need a short name such as \"se\""));
    }
    pose.direction = doc["direction"].get<std::string>();
  }
  if (doc.contains("frame")) {
    if (!doc["frame"].is_number_integer() || doc["frame"].get<int64_t>() < 0 || doc["frame"].get<int64_t>() > 100000) {
      return absl::InvalidArgumentError(absl::StrCat(pose.name, ": frame: need a whole number 0..100000"));
    }
    pose.frame = doc["frame"].get<int>();
  }
  return pose;
}

absl::StatusOr<std::vector<NamedPose>> LoadPoseFile(const fs::path& path) {
  ASSIGN_OR_RETURN(const std::string text, ReadFile(path.string()));
  nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(path.string(), ": not JSON"));
  auto poses = ParsePoseSet(doc, path.stem().string());
  if (!poses.ok()) return absl::InvalidArgumentError(absl::StrCat(path.string(), ": ", poses.status().message()));
  return poses;
}

}  // namespace

absl::StatusOr<std::string> BuiltinPoseDir() {
  std::error_code ec;
  for (const fs::path& dir : CandidateDirs()) {
    if (fs::exists(dir / "walk-8dir.json", ec)) return dir.string();
  }
  return absl::NotFoundError("the built-in poses are not installed (share/spriteforge/poses beside this program)");
}

std::vector<std::string> ListPoseSets() {
  std::vector<std::string> names;
  auto dir = BuiltinPoseDir();
  if (!dir.ok()) return names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(*dir, ec)) {
    if (e.path().extension() == ".json") names.push_back(kBuiltin + e.path().stem().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

absl::StatusOr<std::vector<NamedPose>> LoadBuiltinPoseSet(const std::string& name) {
  const std::string bare = absl::StartsWith(name, kBuiltin) ? name.substr(sizeof(kBuiltin) - 1) : name;
  const std::vector<std::string> known = ListPoseSets();
  if (!IsSafeName(bare) || std::find(known.begin(), known.end(), kBuiltin + bare) == known.end()) {
    RETURN_IF_ERROR(BuiltinPoseDir());
    std::string list;
    for (const auto& k : known) absl::StrAppend(&list, list.empty() ? "" : ", ", k);
    return absl::NotFoundError(absl::StrCat("no pose set \"", name, "\" (built-in: ", list, ")"));
  }
  return LoadPoseFile(fs::path(*BuiltinPoseDir()) / (bare + ".json"));
}

absl::StatusOr<std::vector<NamedPose>> LoadPoseSet(const std::string& name_or_path) {
  if (absl::StartsWith(name_or_path, kBuiltin)) return LoadBuiltinPoseSet(name_or_path);
  std::error_code ec;
  if (!fs::is_directory(name_or_path, ec)) return LoadPoseFile(name_or_path);
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(name_or_path, ec)) {
    if (e.path().extension() == ".json") files.push_back(e.path());
  }
  if (ec) return absl::InvalidArgumentError(absl::StrCat("cannot read ", name_or_path, ": ", ec.message()));
  std::sort(files.begin(), files.end(), [](const fs::path& a, const fs::path& b) {
    return NaturalLess(a.filename().string(), b.filename().string());
  });
  std::vector<NamedPose> all;
  for (const auto& f : files) {
    ASSIGN_OR_RETURN(const std::vector<NamedPose> poses, LoadPoseFile(f));
    all.insert(all.end(), poses.begin(), poses.end());
    if (all.size() > kMaxPoses) return absl::InvalidArgumentError(absl::StrCat(name_or_path, ": more than ", kMaxPoses, " poses"));
  }
  if (all.empty()) return absl::InvalidArgumentError(absl::StrCat("no pose files (*.json) in ", name_or_path));
  return all;
}

absl::StatusOr<std::vector<NamedPose>> ParsePoseSet(const nlohmann::json& doc, const std::string& default_name) {
  if (!doc.is_object() || !doc.contains("poses")) {
    ASSIGN_OR_RETURN(NamedPose pose, ParseOnePose(doc, default_name));
    return std::vector<NamedPose>{std::move(pose)};
  }
  const auto& list = doc["poses"];
  if (!list.is_array() || list.empty() || list.size() > kMaxPoses) {
    return absl::InvalidArgumentError(absl::StrCat("poses: need a list of 1..", kMaxPoses, " poses"));
  }
  std::vector<NamedPose> poses;
  std::set<std::string> names;
  for (size_t i = 0; i < list.size(); ++i) {
    auto pose = ParseOnePose(list[i], absl::StrCat(default_name, "_", i));
    if (!pose.ok()) return absl::InvalidArgumentError(absl::StrCat("poses[", i, "]: ", pose.status().message()));
    if (!names.insert(pose->name).second) {
      return absl::InvalidArgumentError(absl::StrCat("poses[", i, "]: a second pose named \"", pose->name, "\""));
    }
    poses.push_back(*std::move(pose));
  }
  return poses;
}

}  // namespace spriteforge::control
