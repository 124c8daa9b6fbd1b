// What both store backends share about rows: a read-only view of a result row, bind
// values, and the one mapping between records and columns. An item's image parameters are
// two serialized messages (v1.ImageParams and v1.SamplingParams) and a job's
// post-processing settings one (v1.PostprocessSpec), in the columns listed here and nowhere
// else: the SQLite and PostgreSQL schemas, their INSERT and their SELECT all take them from
// this file, so changing how parameters are stored is an edit here only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "coordinator/store/store.h"

namespace spriteforge::coordinator {

// One column of one row of a query result, by position from 0.
class Row {
 public:
  virtual ~Row() = default;
  virtual int64_t Int(int col) const = 0;
  virtual double Double(int col) const = 0;
  virtual std::string Text(int col) const = 0;
  virtual std::optional<std::string> OptText(int col) const = 0;  // nullopt for NULL
  virtual std::string Blob(int col) const = 0;                    // the bytes of a BLOB / BYTEA
};

// Bytes for a BLOB (SQLite) or BYTEA (PostgreSQL) column, as opposed to text.
struct SqlBytes {
  std::string bytes;
};

// A value to bind: NULL, an integer, a real, a text or bytes.
using SqlValue = std::variant<std::monostate, int64_t, double, std::string, SqlBytes>;

// "id, name, ..." of jobs and items, in the order ReadJob and ReadItem read them.
extern const char* const kJobColumns;
const std::string& ItemColumns();

// The columns a new job is inserted with, and a job's values in that order.
extern const char* const kJobInsertColumns;
std::vector<SqlValue> JobInsertValues(const JobRecord& job);
// The definitions of the jobs columns that hold settings ("postprocess_spec {blob}, ..."),
// spelled with schema.h's placeholders.
extern const char* const kJobSettingColumnDefinitions;

// The image-parameter columns: their names ("image, sampling, random_seed"), their
// definitions for CREATE TABLE (with schema.h's placeholders), and an item's values in
// that order.
const std::string& ItemParamColumns();
int ItemParamColumnCount();
extern const char* const kItemParamColumnDefinitions;
std::vector<SqlValue> ItemParamValues(const ItemRecord& item);

// The text a job is searched by (JobQuery), kept in its search_text column: its name, model,
// owner and the distinct prompts of JobRecord::prompts, one a line, ASCII letters
// lower-cased. Prompts that would take it past 64 KiB are left out.
std::string JobSearchText(const JobRecord& job);

JobRecord ReadJob(const Row& row);
ItemRecord ReadItem(const Row& row);

}  // namespace spriteforge::coordinator
