// The output folder: DIR/<job-id>/<index>_<seed>.png (+ .sprite.png when post-processed)
// with a JSON sidecar <index>_<seed>.json, and DIR/<job-id>/job.json. A result's files are
// staged under temporary names, made durable by one file-system sync for a whole group of
// results, then renamed into place inside the store's result transaction, after its fence
// check: a committed item always has its files, a leader another has fenced never replaces
// one, and a thousand images a second cost a hundred syncs, not two thousand.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "coordinator/store/store.h"

namespace spriteforge::coordinator {

// "queued", "running", ...: the names job.json and the logs use.
const char* JobStateName(JobState state);

struct ItemFiles {
  std::string image_path;
  std::string sprite_path;  // empty without a sprite
};

// Files written under temporary names beside their final ones, not yet synced.
struct StagedFiles {
  ItemFiles files;
  std::vector<std::pair<std::string, std::string>> renames;  // temporary -> final
};

// `sidecar` holds what the coordinator knows beyond the parameters (worker, timings, memory).
absl::StatusOr<StagedFiles> StageItemFiles(const std::string& output_dir, const std::string& model,
                                           const ItemRecord& item, const std::vector<std::string>& notes,
                                           const std::string& png, const std::string& sprite_png,
                                           const nlohmann::json& sidecar);
// Makes every staged file's data durable (syncfs of the file system holding `output_dir`).
absl::Status SyncOutput(const std::string& output_dir);
absl::Status PublishStaged(const StagedFiles& staged);  // after SyncOutput
void DiscardStaged(const StagedFiles& staged);

nlohmann::json JobSummary(const JobRecord& job, const ItemCounts& counts, const std::vector<ItemRecord>& items);
// The job's items with an index above `after`, by index, at most `limit` (Store::ItemsPage).
using ItemPages = std::function<absl::StatusOr<std::vector<ItemRecord>>(int after, int limit)>;
// job.json, written atomically as JobSummary's text, reading the items a page at a time: a
// job of a hundred thousand images costs a page of memory, not the whole job.
absl::Status WriteJobSummary(const std::string& output_dir, const JobRecord& job, const ItemCounts& counts,
                             const ItemPages& pages);

std::string JobDir(const std::string& output_dir, const std::string& job_id);

// A result file an item row names, resolved (every link followed), when it lies inside
// `output_dir`; PermissionDenied naming it otherwise, so a damaged or edited row
// (image_path = '/etc/shadow', a link pointing out of the folder) never serves another file.
absl::StatusOr<std::string> ConfinedResultPath(const std::string& output_dir, const std::string& path);

// Removes an item's image, sprite and sidecar (a result that did not count).
void RemoveItemFiles(const ItemFiles& files);

// Removes the job folder's temporary files (FILE.tmp.PID) that a killed process left;
// returns how many.
int RemoveTemporaryFiles(const std::string& output_dir, const std::string& job_id);

}  // namespace spriteforge::coordinator
