#include "service/results.h"

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "spriteforge/common/files.h"

namespace spriteforge::coordinator {
namespace {

bool LooksLikePng(const std::string& bytes) {
  return bytes.size() > 8 && bytes.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0;
}

const char* StateName(ItemState s) {
  switch (s) {
    case ItemState::kQueued: return "queued";
    case ItemState::kRunning: return "running";
    case ItemState::kDone: return "done";
    case ItemState::kFailed: return "failed";
    case ItemState::kCancelled: return "cancelled";
  }
  return "unknown";
}

const char* JobStateName(JobState s) {
  switch (s) {
    case JobState::kQueued: return "queued";
    case JobState::kRunning: return "running";
    case JobState::kDone: return "done";
    case JobState::kFailed: return "failed";
    case JobState::kCancelled: return "cancelled";
  }
  return "unknown";
}

}  // namespace

std::string JobDir(const std::string& output_dir, const std::string& job_id) {
  return (std::filesystem::path(output_dir) / job_id).string();
}

absl::StatusOr<ItemFiles> WriteItemFiles(const std::string& output_dir, const ItemRecord& item,
                                         const std::string& png, const std::string& sprite_png,
                                         const nlohmann::json& sidecar) {
  if (!LooksLikePng(png)) return absl::InvalidArgumentError("the worker's result is not a PNG");
  if (!sprite_png.empty() && !LooksLikePng(sprite_png)) {
    return absl::InvalidArgumentError("the worker's sprite is not a PNG");
  }
  const std::string dir = JobDir(output_dir, item.job_id);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::ResourceExhaustedError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  const std::string stem = absl::StrCat(dir, "/", item.index, "_", item.params.seed);
  ItemFiles files{stem + ".png", sprite_png.empty() ? "" : stem + ".sprite.png"};
  if (auto s = WriteFileAtomic(files.image_path, png); !s.ok()) return s;
  if (!sprite_png.empty()) {
    if (auto s = WriteFileAtomic(files.sprite_path, sprite_png); !s.ok()) return s;
  }
  nlohmann::json meta = sidecar;
  meta["parameters"] = ToJson(item.params);
  meta["job_id"] = item.job_id;
  meta["index"] = item.index;
  meta["random_seed"] = item.random_seed;
  meta["image"] = std::filesystem::path(files.image_path).filename().string();
  if (!files.sprite_path.empty()) meta["sprite"] = std::filesystem::path(files.sprite_path).filename().string();
  if (auto s = WriteFileAtomic(stem + ".json", meta.dump(2) + "\n"); !s.ok()) return s;
  return files;
}

nlohmann::json JobSummary(const JobRecord& job, const ItemCounts& counts, const std::vector<ItemRecord>& items) {
  nlohmann::json j = {{"id", job.id},
                      {"name", job.name},
                      {"model", job.model},
                      {"priority", job.priority},
                      {"state", JobStateName(job.state)},
                      {"created_unix_ms", job.created_ms},
                      {"started_unix_ms", job.started_ms},
                      {"finished_unix_ms", job.finished_ms},
                      {"counts",
                       {{"total", counts.total},
                        {"queued", counts.queued},
                        {"running", counts.running},
                        {"done", counts.done},
                        {"failed", counts.failed},
                        {"cancelled", counts.cancelled}}}};
  if (!job.postprocess_json.empty()) j["postprocess"] = nlohmann::json::parse(job.postprocess_json, nullptr, false);
  nlohmann::json list = nlohmann::json::array();
  for (const ItemRecord& it : items) {
    nlohmann::json e = {{"index", it.index}, {"seed", it.params.seed}, {"prompt", it.params.prompt},
                        {"state", StateName(it.state)}, {"attempts", it.attempts}};
    if (!it.image_path.empty()) e["image"] = std::filesystem::path(it.image_path).filename().string();
    if (!it.sprite_path.empty()) e["sprite"] = std::filesystem::path(it.sprite_path).filename().string();
    if (!it.worker_id.empty()) e["worker"] = it.worker_id;
    if (!it.failure_message.empty()) e["failure"] = it.failure_message;
    list.push_back(std::move(e));
  }
  j["items"] = std::move(list);
  return j;
}

absl::Status WriteJobSummary(const std::string& output_dir, const JobRecord& job, const ItemCounts& counts,
                             const std::vector<ItemRecord>& items) {
  const std::string dir = JobDir(output_dir, job.id);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::ResourceExhaustedError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  return WriteFileAtomic(dir + "/job.json", JobSummary(job, counts, items).dump(2) + "\n");
}

}  // namespace spriteforge::coordinator
