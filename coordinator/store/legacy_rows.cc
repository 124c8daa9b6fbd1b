#include "coordinator/store/legacy_rows.h"

#include <cstring>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/sampling.h"
#include "common/sprite/spec.h"
#include "common/status_macros.h"
#include "spriteforge/v1/spriteforge.pb.h"

namespace spriteforge::coordinator {
namespace {

bool HasColumn(Database& db, const char* table, const char* column) {
  Statement q(db.raw(), absl::StrCat("SELECT COUNT(*) FROM pragma_table_info('", table, "') WHERE name = '", column,
                                     "'").c_str());
  return q.Step() && q.Int(0) > 0;
}

// Seeds were stored as the bit pattern of the unsigned value.
uint64_t SeedFromDb(int64_t v) {
  uint64_t seed;
  std::memcpy(&seed, &v, sizeof seed);
  return seed;
}

// One row of the old items layout: the per-field columns and the workflow JSON (LoRAs,
// img2img, TCD).
void ReadLegacyItem(const Statement& s, v1::ImageParams* image, v1::SamplingParams* sampling) {
  image->set_prompt(s.Text(2));
  if (auto negative = s.OptText(3)) image->set_negative(*negative);
  image->set_seed(SeedFromDb(s.Int(4)));
  sampling->set_width(static_cast<int>(s.Int(5)));
  sampling->set_height(static_cast<int>(s.Int(6)));
  sampling->set_steps(static_cast<int>(s.Int(7)));
  sampling->set_cfg(s.Double(8));
  sampling->set_sampler(ParseSampler(s.Text(9)).value_or(v1::SAMPLER_EULER));
  sampling->set_schedule(ParseSchedule(s.Text(10)).value_or(v1::SCHEDULE_NORMAL));
  sampling->set_tileable(s.Int(11) != 0);
  const std::string workflow = s.Text(12);
  if (workflow.empty()) return;
  const auto j = nlohmann::json::parse(workflow, nullptr, false);
  if (!j.is_object()) return;
  if (auto loras = j.find("loras"); loras != j.end() && loras->is_array()) {
    for (const auto& l : *loras) {
      v1::LoraRef* lora = sampling->add_loras();
      lora->set_name(l.value("name", ""));
      lora->set_strength(l.value("strength", 1.0));
      lora->set_sha256(l.value("sha256", ""));
    }
  }
  image->set_init_image_sha256(j.value("init_image", ""));
  if (!image->init_image_sha256().empty()) sampling->set_strength(j.value("strength", 0.75));
  if (sampling->sampler() == v1::SAMPLER_TCD) sampling->set_tcd_gamma(j.value("tcd_gamma", 0.3));
}

absl::Status UpgradeItems(Database& db) {
  if (!HasColumn(db, "items", "prompt")) return absl::OkStatus();
  RETURN_IF_ERROR(AddMissingColumn(db, "items", "workflow", "TEXT NOT NULL DEFAULT ''"));
  for (const char* column : {"image", "sampling"}) {
    RETURN_IF_ERROR(AddMissingColumn(db, "items", column, "BLOB NOT NULL DEFAULT x''"));
  }
  struct Row {
    std::string job_id;
    int64_t index;
    std::string image, sampling;
  };
  std::vector<Row> rows;
  {
    Statement q(db.raw(),
                "SELECT job_id, idx, prompt, negative, seed, width, height, steps, cfg, sampler, schedule, tileable, "
                "workflow FROM items");
    while (q.Step()) {
      v1::ImageParams image;
      v1::SamplingParams sampling;
      ReadLegacyItem(q, &image, &sampling);
      rows.push_back({q.Text(0), q.Int(1), image.SerializeAsString(), sampling.SerializeAsString()});
    }
    RETURN_IF_ERROR(q.status());
  }
  for (const Row& row : rows) {
    Statement up(db.raw(), "UPDATE items SET image = ?, sampling = ? WHERE job_id = ? AND idx = ?");
    up.BindBlob(1, row.image).BindBlob(2, row.sampling).Bind(3, row.job_id).Bind(4, row.index);
    RETURN_IF_ERROR(up.Run());
  }
  for (const char* column : {"prompt", "negative", "seed", "width", "height", "steps", "cfg", "sampler", "schedule",
                             "model", "tileable", "workflow"}) {
    RETURN_IF_ERROR(db.Exec(absl::StrCat("ALTER TABLE items DROP COLUMN ", column)));
  }
  return absl::OkStatus();
}

// The postprocess JSON of jobs made before the spec message, parsed as at submit.
absl::Status UpgradeJobs(Database& db) {
  RETURN_IF_ERROR(AddMissingColumn(db, "jobs", "postprocess_spec", "BLOB"));
  if (!HasColumn(db, "jobs", "postprocess")) return absl::OkStatus();
  std::vector<std::pair<std::string, std::string>> specs;  // job id, spec
  {
    Statement q(db.raw(), "SELECT id, postprocess FROM jobs WHERE postprocess <> ''");
    while (q.Step()) {
      auto spec = postprocess::ParsePostprocessSpec(nlohmann::json::parse(q.Text(1), nullptr, false));
      // A section that no longer parses was refused at submit since: such a job makes no sprites.
      if (spec.ok()) specs.emplace_back(q.Text(0), spec->SerializeAsString());
    }
    RETURN_IF_ERROR(q.status());
  }
  for (const auto& [id, spec] : specs) {
    Statement up(db.raw(), "UPDATE jobs SET postprocess_spec = ? WHERE id = ?");
    up.BindBlob(1, spec).Bind(2, id);
    RETURN_IF_ERROR(up.Run());
  }
  return db.Exec("ALTER TABLE jobs DROP COLUMN postprocess");
}

}  // namespace

absl::Status AddMissingColumn(Database& db, const char* table, const char* column, const char* definition) {
  if (HasColumn(db, table, column)) return absl::OkStatus();
  return db.Exec(absl::StrCat("ALTER TABLE ", table, " ADD COLUMN ", column, " ", definition));
}

absl::Status UpgradeLegacyRows(Database& db) {
  if (HasColumn(db, "items", "image") && HasColumn(db, "jobs", "postprocess_spec") &&
      !HasColumn(db, "items", "prompt") && !HasColumn(db, "jobs", "postprocess")) {
    return absl::OkStatus();
  }
  Transaction tx(db);
  RETURN_IF_ERROR(tx.status());
  RETURN_IF_ERROR(UpgradeJobs(db));
  RETURN_IF_ERROR(UpgradeItems(db));
  return tx.Commit();
}

}  // namespace spriteforge::coordinator
