// The store's schema, written once for both backends. Each statement is spelled with
// placeholders that a dialect fills ({int64}, {blob}, {serial_key}, {without_rowid}); the
// few with no common spelling (each backend's trigger, SQLite's cleanups of its own earlier
// versions) say which backend they are for. The tables, columns and types are those the
// stores were always made with, so databases made before open as they are.
#pragma once

#include <string>
#include <vector>

namespace spriteforge::coordinator {

enum class SqlDialect { kSqlite, kPostgres };

// Every table, index, the per-state count trigger and the leader row, as statements
// separated by ';'. Each leaves an existing object as it is (IF NOT EXISTS and the like),
// so running them on a store of this version changes nothing.
std::string CreateSchemaSql(SqlDialect dialect);

// A column added to a table after its first version: stores made before lack it and get
// it, with its default, when opened.
struct AddedColumn {
  std::string table;
  std::string column;
  std::string definition;  // in the dialect's spelling: "INTEGER NOT NULL DEFAULT 0"
};
std::vector<AddedColumn> AddedColumns(SqlDialect dialect);

// Indexes over added columns: made once AddedColumns exist.
std::string IndexAddedColumnsSql();

// `sql` with the dialect's spellings in place of the placeholders.
std::string Spelled(const std::string& sql, SqlDialect dialect);

}  // namespace spriteforge::coordinator
