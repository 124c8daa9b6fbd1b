#include "coordinator/core/results.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/files.h"
#include "common/generation_info.h"
#include "common/status_macros.h"

namespace spriteforge::coordinator {
namespace {

// The job's post-processing settings as stored, field names as in the proto.
nlohmann::json PostprocessJson(const v1::PostprocessSpec& spec) {
  std::string text;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  if (!google::protobuf::util::MessageToJsonString(spec, &text, options).ok()) return nullptr;
  return nlohmann::json::parse(text, nullptr, false);
}

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

}  // namespace

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

std::string JobDir(const std::string& output_dir, const std::string& job_id) {
  return (std::filesystem::path(output_dir) / job_id).string();
}

absl::StatusOr<std::string> ConfinedResultPath(const std::string& output_dir, const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path root = fs::weakly_canonical(fs::absolute(output_dir, ec), ec);
  const fs::path real = ec ? fs::path() : fs::weakly_canonical(fs::absolute(path, ec), ec);
  if (ec || path.empty()) {
    return absl::PermissionDeniedError(absl::StrCat("result file '", path, "' cannot be resolved"));
  }
  // Inside: the folder's path is a prefix of the file's, component by component, and more.
  auto [in_root, in_real] = std::mismatch(root.begin(), root.end(), real.begin(), real.end());
  if (in_root != root.end() || in_real == real.end()) {
    return absl::PermissionDeniedError(
        absl::StrCat("result file '", path, "' is outside the results folder ", root.string(), "; not served"));
  }
  return real.string();
}

namespace {

// Unique per process and call, so two results for one item (a late one from a worker that
// lost its lease) never write the same temporary file.
std::string TemporaryName(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  return absl::StrCat(path, ".tmp.", getpid(), ".", counter++);
}

absl::Status WriteUnsynced(const std::string& path, const std::string& data) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return absl::UnavailableError(absl::StrCat(path, ": cannot create: ", std::strerror(errno)));
  size_t written = 0;
  while (written < data.size()) {
    const ssize_t n = ::write(fd, data.data() + written, data.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      ::unlink(path.c_str());
      return absl::ResourceExhaustedError(absl::StrCat(path, ": write failed: ", std::strerror(err)));
    }
    written += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(path.c_str());
    return absl::ResourceExhaustedError(absl::StrCat(path, ": write failed: ", std::strerror(err)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<StagedFiles> StageItemFiles(const std::string& output_dir, const std::string& model,
                                           const ItemRecord& item, const std::vector<std::string>& notes,
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
  const std::string stem = absl::StrCat(dir, "/", item.index, "_", item.image.seed());
  StagedFiles staged;
  staged.files = {stem + ".png", sprite_png.empty() ? "" : stem + ".sprite.png"};
  auto stage = [&](const std::string& path, const std::string& data) -> absl::Status {
    const std::string tmp = TemporaryName(path);
    RETURN_IF_ERROR(WriteUnsynced(tmp, data));
    staged.renames.emplace_back(tmp, path);
    return absl::OkStatus();
  };
  nlohmann::json meta = sidecar;
  meta["parameters"] = ToJson(model, item.image, item.sampling);
  if (!notes.empty()) meta["parameters"]["notes"] = notes;
  meta["job_id"] = item.job_id;
  meta["index"] = item.index;
  meta["random_seed"] = item.random_seed;
  meta["image"] = std::filesystem::path(staged.files.image_path).filename().string();
  if (!sprite_png.empty()) meta["sprite"] = std::filesystem::path(staged.files.sprite_path).filename().string();
  absl::Status s = stage(staged.files.image_path, png);
  if (s.ok() && !sprite_png.empty()) s = stage(staged.files.sprite_path, sprite_png);
  if (s.ok()) s = stage(stem + ".json", meta.dump(2) + "\n");
  if (!s.ok()) {
    DiscardStaged(staged);
    return s;
  }
  return staged;
}

absl::Status SyncOutput(const std::string& output_dir) {
  const int fd = ::open(output_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return absl::UnavailableError(absl::StrCat(output_dir, ": cannot open: ", std::strerror(errno)));
  const int rc = ::syncfs(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return absl::ResourceExhaustedError(absl::StrCat(output_dir, ": sync failed: ", std::strerror(err)));
  return absl::OkStatus();
}

absl::Status PublishStaged(const StagedFiles& staged) {
  for (const auto& [tmp, path] : staged.renames) {
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
      return absl::UnavailableError(absl::StrCat(path, ": rename failed: ", std::strerror(errno)));
    }
  }
  return absl::OkStatus();
}

void DiscardStaged(const StagedFiles& staged) {
  for (const auto& [tmp, path] : staged.renames) ::unlink(tmp.c_str());
}

int RemoveTemporaryFiles(const std::string& output_dir, const std::string& job_id) {
  std::error_code ec;
  int removed = 0;
  for (const auto& e : std::filesystem::directory_iterator(JobDir(output_dir, job_id), ec)) {
    if (e.path().filename().string().find(".tmp.") != std::string::npos && std::filesystem::remove(e.path(), ec)) {
      ++removed;
    }
  }
  return removed;
}

void RemoveItemFiles(const ItemFiles& files) {
  std::error_code ec;
  std::filesystem::remove(files.image_path, ec);
  if (!files.sprite_path.empty()) std::filesystem::remove(files.sprite_path, ec);
  const std::string& png = files.image_path;
  std::filesystem::remove(png.substr(0, png.size() - 4) + ".json", ec);
}

namespace {

nlohmann::json SummaryHead(const JobRecord& job, const ItemCounts& counts) {
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
  if (job.postprocess) j["postprocess"] = PostprocessJson(*job.postprocess);
  return j;
}

nlohmann::json SummaryItem(const ItemRecord& it) {
  nlohmann::json e = {{"index", it.index}, {"seed", it.image.seed()}, {"prompt", it.image.prompt()},
                      {"state", StateName(it.state)}, {"attempts", it.attempts}};
  if (!it.image_path.empty()) e["image"] = std::filesystem::path(it.image_path).filename().string();
  if (!it.sprite_path.empty()) e["sprite"] = std::filesystem::path(it.sprite_path).filename().string();
  if (!it.worker_id.empty()) e["worker"] = it.worker_id;
  if (!it.failure_message.empty()) e["failure"] = it.failure_message;
  return e;
}

absl::Status WriteAll(int fd, const std::string& path, const std::string& data) {
  size_t written = 0;
  while (written < data.size()) {
    const ssize_t n = ::write(fd, data.data() + written, data.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::ResourceExhaustedError(absl::StrCat(path, ": write failed: ", std::strerror(errno)));
    written += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// The summary's text, written as it is made: the head, then the items a page at a time.
absl::Status WriteSummaryText(int fd, const std::string& path, const JobRecord& job, const ItemCounts& counts,
                              const ItemPages& pages) {
  constexpr int kPage = 1000;
  std::string text = SummaryHead(job, counts).dump(2);
  text.resize(text.size() - 2);  // "\n}": the items come last
  text += ",\n  \"items\": [";
  bool first = true;
  for (int after = -1;;) {
    ASSIGN_OR_RETURN(auto page, pages(after, kPage));
    for (const ItemRecord& it : page) {
      absl::StrAppend(&text, first ? "\n    " : ",\n    ", absl::StrReplaceAll(SummaryItem(it).dump(2), {{"\n", "\n    "}}));
      first = false;
      after = it.index;
    }
    RETURN_IF_ERROR(WriteAll(fd, path, text));
    text.clear();
    if (static_cast<int>(page.size()) < kPage) break;
  }
  return WriteAll(fd, path, first ? "]\n}\n" : "\n  ]\n}\n");
}

}  // namespace

nlohmann::json JobSummary(const JobRecord& job, const ItemCounts& counts, const std::vector<ItemRecord>& items) {
  nlohmann::json j = SummaryHead(job, counts);
  nlohmann::json list = nlohmann::json::array();
  for (const ItemRecord& it : items) list.push_back(SummaryItem(it));
  j["items"] = std::move(list);
  return j;
}

absl::Status WriteJobSummary(const std::string& output_dir, const JobRecord& job, const ItemCounts& counts,
                             const ItemPages& pages) {
  const std::string dir = JobDir(output_dir, job.id);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::ResourceExhaustedError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  const std::string path = dir + "/job.json";
  const std::string tmp = TemporaryName(path);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return absl::UnavailableError(absl::StrCat(path, ": cannot create: ", std::strerror(errno)));
  absl::Status s = WriteSummaryText(fd, path, job, counts, pages);
  if (s.ok() && ::fsync(fd) != 0) s = absl::ResourceExhaustedError(absl::StrCat(path, ": sync failed: ", std::strerror(errno)));
  if (::close(fd) != 0 && s.ok()) s = absl::ResourceExhaustedError(absl::StrCat(path, ": write failed: ", std::strerror(errno)));
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    s = absl::UnavailableError(absl::StrCat(path, ": rename failed: ", std::strerror(errno)));
  }
  if (!s.ok()) ::unlink(tmp.c_str());
  return s;
}

}  // namespace spriteforge::coordinator
