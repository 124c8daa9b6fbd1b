// The output folder: DIR/<job-id>/<index>_<seed>.png (+ .sprite.png when post-processed)
// with a JSON sidecar <index>_<seed>.json, and DIR/<job-id>/job.json. Files are written
// atomically before the store commits the item, so a committed item always has its files.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "store/store.h"

namespace spriteforge::coordinator {

struct ItemFiles {
  std::string image_path;
  std::string sprite_path;  // empty without a sprite
};

// `sidecar` holds what the coordinator knows beyond the parameters (worker, timings, memory).
absl::StatusOr<ItemFiles> WriteItemFiles(const std::string& output_dir, const ItemRecord& item,
                                         const std::string& png, const std::string& sprite_png,
                                         const nlohmann::json& sidecar);

nlohmann::json JobSummary(const JobRecord& job, const ItemCounts& counts, const std::vector<ItemRecord>& items);
absl::Status WriteJobSummary(const std::string& output_dir, const JobRecord& job, const ItemCounts& counts,
                             const std::vector<ItemRecord>& items);

std::string JobDir(const std::string& output_dir, const std::string& job_id);

}  // namespace spriteforge::coordinator
