#include "coordinator/store/rows.h"

#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace spriteforge::coordinator {
const char* const kJobColumns =
    "id, name, model, priority, state, created_ms, started_ms, finished_ms, "
    "COALESCE(idempotency_key, ''), seq, owner, postprocess_spec, preview_every";

const char* const kJobInsertColumns =
    "id, name, model, priority, state, created_ms, idempotency_key, owner, postprocess_spec, preview_every, "
    "search_text";

std::string JobSearchText(const JobRecord& job) {
  constexpr size_t kMaxBytes = 64 << 10;
  std::string text = absl::StrCat(job.name, "\n", job.model, "\n", job.owner);
  std::set<std::string> seen;
  for (const std::string& prompt : job.prompts) {
    if (prompt.empty() || !seen.insert(prompt).second) continue;
    if (text.size() + 1 + prompt.size() > kMaxBytes) break;
    absl::StrAppend(&text, "\n", prompt);
  }
  absl::AsciiStrToLower(&text);
  return text;
}

std::vector<SqlValue> JobInsertValues(const JobRecord& job) {
  return {job.id,
          job.name,
          job.model,
          int64_t{job.priority},
          int64_t{static_cast<int>(job.state)},
          job.created_ms,
          job.idempotency_key,
          job.owner,
          job.postprocess ? SqlValue(SqlBytes{job.postprocess->SerializeAsString()}) : SqlValue(std::monostate{}),
          int64_t{job.preview_every},
          JobSearchText(job)};
}

// postprocess_spec: v1.PostprocessSpec; NULL when the job makes no sprites.
const char* const kJobSettingColumnDefinitions = "postprocess_spec {blob},\n  preview_every INTEGER NOT NULL DEFAULT 0";

const std::string& ItemParamColumns() {
  static const std::string names = "image, sampling, random_seed";
  return names;
}

int ItemParamColumnCount() { return 3; }

const std::string& ItemColumns() {
  static const std::string columns =
      absl::StrCat("job_id, idx, ", ItemParamColumns(),
                   ", state, batch_id, worker_id, attempts, image_path, sprite_path, failure, failure_message, done_ms");
  return columns;
}

// image: v1.ImageParams (prompt, negative, seed, start image); sampling: v1.SamplingParams.
const char* const kItemParamColumnDefinitions =
    "image {blob} NOT NULL,\n  sampling {blob} NOT NULL,\n  random_seed INTEGER NOT NULL";

std::vector<SqlValue> ItemParamValues(const ItemRecord& it) {
  return {SqlBytes{it.image.SerializeAsString()}, SqlBytes{it.sampling.SerializeAsString()},
          int64_t{it.random_seed ? 1 : 0}};
}

JobRecord ReadJob(const Row& s) {
  JobRecord j;
  j.id = s.Text(0);
  j.name = s.Text(1);
  j.model = s.Text(2);
  j.priority = static_cast<int>(s.Int(3));
  j.state = static_cast<JobState>(s.Int(4));
  j.created_ms = s.Int(5);
  j.started_ms = s.Int(6);
  j.finished_ms = s.Int(7);
  j.idempotency_key = s.Text(8);
  j.seq = s.Int(9);
  j.owner = s.Text(10);
  if (s.OptText(11)) j.postprocess.emplace().ParseFromString(s.Blob(11));
  j.preview_every = static_cast<int>(s.Int(12));
  return j;
}

ItemRecord ReadItem(const Row& s) {
  ItemRecord it;
  it.job_id = s.Text(0);
  it.index = static_cast<int>(s.Int(1));
  it.image.ParseFromString(s.Blob(2));
  it.sampling.ParseFromString(s.Blob(3));
  it.random_seed = s.Int(4) != 0;
  it.state = static_cast<ItemState>(s.Int(5));
  it.batch_id = s.Text(6);
  it.worker_id = s.Text(7);
  it.attempts = static_cast<int>(s.Int(8));
  it.image_path = s.Text(9);
  it.sprite_path = s.Text(10);
  it.failure = static_cast<int>(s.Int(11));
  it.failure_message = s.Text(12);
  it.done_ms = s.Int(13);
  return it;
}

}  // namespace spriteforge::coordinator
