// What both store backends share about rows: a read-only view of a result row, bind
// values, and the one mapping between records and columns. The image parameters of an item
// (prompt, seed, size, sampler, LoRAs ...) live in the columns listed here and nowhere else:
// the SQLite and PostgreSQL schemas, their INSERT and their SELECT all take them from this
// file, so changing how parameters are stored is an edit here only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "store/store.h"

namespace spriteforge::coordinator {

// One column of one row of a query result, by position from 0.
class Row {
 public:
  virtual ~Row() = default;
  virtual int64_t Int(int col) const = 0;
  virtual double Double(int col) const = 0;
  virtual std::string Text(int col) const = 0;
  virtual std::optional<std::string> OptText(int col) const = 0;  // nullopt for NULL
};

// A value to bind: NULL, an integer, a real or a text.
using SqlValue = std::variant<std::monostate, int64_t, double, std::string>;

enum class SqlDialect { kSqlite, kPostgres };

// "id, name, ..." of jobs and items, in the order ReadJob and ReadItem read them.
extern const char* const kJobColumns;
const std::string& ItemColumns();

// The image-parameter columns: their names ("prompt, negative, ..."), their definitions
// for CREATE TABLE in a dialect, and an item's values in that order.
const std::string& ItemParamColumns();
int ItemParamColumnCount();
std::string ItemParamColumnDefinitions(SqlDialect dialect);
std::vector<SqlValue> ItemParamValues(const ItemRecord& item);

JobRecord ReadJob(const Row& row);
ItemRecord ReadItem(const Row& row);

// Seeds are unsigned 64-bit; both databases' integers are signed. The bit pattern is stored.
int64_t SeedToDb(uint64_t seed);
uint64_t SeedFromDb(int64_t v);

}  // namespace spriteforge::coordinator
