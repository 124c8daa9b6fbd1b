#include "store/rows.h"

#include <cstring>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace spriteforge::coordinator {
namespace {

enum class ColumnType { kInt, kReal, kText, kOptText };

struct ParamColumn {
  const char* name;
  ColumnType type;
  const char* default_value;  // nullptr: none (NOT NULL without default)
};

// The image parameters of an item, in column order. ItemParamValues and ReadItemParams
// below follow this order.
constexpr ParamColumn kParamColumns[] = {
    {"prompt", ColumnType::kText, nullptr},     {"negative", ColumnType::kOptText, nullptr},
    {"seed", ColumnType::kInt, nullptr},        {"random_seed", ColumnType::kInt, nullptr},
    {"width", ColumnType::kInt, nullptr},       {"height", ColumnType::kInt, nullptr},
    {"steps", ColumnType::kInt, nullptr},       {"cfg", ColumnType::kReal, nullptr},
    {"sampler", ColumnType::kText, nullptr},    {"schedule", ColumnType::kText, nullptr},
    {"model", ColumnType::kText, nullptr},      {"tileable", ColumnType::kInt, nullptr},
    {"workflow", ColumnType::kText, "''"},
};
constexpr int kParamCount = sizeof(kParamColumns) / sizeof(kParamColumns[0]);

// LoRAs, img2img and the TCD setting in one JSON column: "" for a plain txt2img item, so
// the common case costs nothing and new settings need no new columns.
std::string WorkflowToDb(const GenerationInfo& p) {
  nlohmann::json j = nlohmann::json::object();
  for (const LoraUse& lora : p.loras) {
    j["loras"].push_back({{"name", lora.name}, {"strength", lora.strength}, {"sha256", lora.sha256}});
  }
  if (!p.init_image.empty()) j["init_image"] = p.init_image;
  if (p.denoising_strength) j["strength"] = *p.denoising_strength;
  if (p.sampler == "tcd") j["tcd_gamma"] = p.tcd_gamma;
  return j.empty() ? "" : j.dump();
}

void WorkflowFromDb(const std::string& text, GenerationInfo& p) {
  if (text.empty()) return;
  const auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) return;
  if (auto loras = j.find("loras"); loras != j.end() && loras->is_array()) {
    for (const auto& l : *loras) {
      p.loras.push_back({l.value("name", ""), l.value("strength", 1.0), l.value("sha256", "")});
    }
  }
  p.init_image = j.value("init_image", "");
  if (j.contains("strength")) p.denoising_strength = j.value("strength", 1.0);
  p.tcd_gamma = j.value("tcd_gamma", 0.3);
}

// Reads the parameter columns starting at `first`; returns the column after them.
int ReadItemParams(const Row& s, int first, ItemRecord& it) {
  int c = first;
  it.params.prompt = s.Text(c++);
  it.params.negative = s.OptText(c++);
  it.params.seed = SeedFromDb(s.Int(c++));
  it.random_seed = s.Int(c++) != 0;
  it.params.width = static_cast<int>(s.Int(c++));
  it.params.height = static_cast<int>(s.Int(c++));
  it.params.steps = static_cast<int>(s.Int(c++));
  it.params.cfg = s.Double(c++);
  it.params.sampler = s.Text(c++);
  it.params.schedule = s.Text(c++);
  it.params.model = s.Text(c++);
  it.params.tileable = s.Int(c++) != 0;
  WorkflowFromDb(s.Text(c++), it.params);
  return c;
}

const char* TypeName(ColumnType type, SqlDialect dialect) {
  const bool pg = dialect == SqlDialect::kPostgres;
  switch (type) {
    case ColumnType::kInt: return pg ? "BIGINT NOT NULL" : "INTEGER NOT NULL";
    case ColumnType::kReal: return pg ? "DOUBLE PRECISION NOT NULL" : "REAL NOT NULL";
    case ColumnType::kText: return "TEXT NOT NULL";
    case ColumnType::kOptText: return "TEXT";
  }
  return "TEXT";
}

}  // namespace

const char* const kJobColumns =
    "id, name, model, priority, state, created_ms, started_ms, finished_ms, "
    "COALESCE(idempotency_key, ''), postprocess, seq, owner";

const std::string& ItemParamColumns() {
  static const std::string names = [] {
    std::vector<std::string> out;
    for (const ParamColumn& c : kParamColumns) out.push_back(c.name);
    return absl::StrJoin(out, ", ");
  }();
  return names;
}

int ItemParamColumnCount() { return kParamCount; }

const std::string& ItemColumns() {
  static const std::string columns =
      absl::StrCat("job_id, idx, ", ItemParamColumns(),
                   ", state, batch_id, worker_id, attempts, image_path, sprite_path, failure, failure_message, done_ms");
  return columns;
}

std::string ItemParamColumnDefinitions(SqlDialect dialect) {
  std::vector<std::string> out;
  for (const ParamColumn& c : kParamColumns) {
    out.push_back(absl::StrCat(c.name, " ", TypeName(c.type, dialect),
                               c.default_value ? absl::StrCat(" DEFAULT ", c.default_value) : ""));
  }
  return absl::StrJoin(out, ",\n  ");
}

std::vector<SqlValue> ItemParamValues(const ItemRecord& it) {
  const GenerationInfo& p = it.params;
  return {p.prompt,
          p.negative ? SqlValue(*p.negative) : SqlValue(std::monostate{}),
          SeedToDb(p.seed),
          int64_t{it.random_seed ? 1 : 0},
          int64_t{p.width},
          int64_t{p.height},
          int64_t{p.steps},
          p.cfg,
          p.sampler,
          p.schedule,
          p.model,
          int64_t{p.tileable ? 1 : 0},
          WorkflowToDb(p)};
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
  j.postprocess_json = s.Text(9);
  j.seq = s.Int(10);
  j.owner = s.Text(11);
  return j;
}

ItemRecord ReadItem(const Row& s) {
  ItemRecord it;
  it.job_id = s.Text(0);
  it.index = static_cast<int>(s.Int(1));
  int c = ReadItemParams(s, 2, it);
  it.state = static_cast<ItemState>(s.Int(c++));
  it.batch_id = s.Text(c++);
  it.worker_id = s.Text(c++);
  it.attempts = static_cast<int>(s.Int(c++));
  it.image_path = s.Text(c++);
  it.sprite_path = s.Text(c++);
  it.failure = static_cast<int>(s.Int(c++));
  it.failure_message = s.Text(c++);
  it.done_ms = s.Int(c++);
  return it;
}

int64_t SeedToDb(uint64_t seed) {
  int64_t v;
  std::memcpy(&v, &seed, sizeof v);
  return v;
}

uint64_t SeedFromDb(int64_t v) {
  uint64_t seed;
  std::memcpy(&seed, &v, sizeof seed);
  return seed;
}

}  // namespace spriteforge::coordinator
