#include "worker/engine/base/meminfo.h"

#include <limits>
#include <map>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/files.h"
#include "common/status_macros.h"

namespace spriteforge::engine {
namespace {

struct Field {
  uint64_t value = 0;
  bool in_kb = false;
};

constexpr uint64_t kMaxKb = std::numeric_limits<uint64_t>::max() / 1024;

}  // namespace

absl::StatusOr<uint64_t> AvailableBytesFromMeminfo(std::string_view text, std::string_view origin_view) {
  const absl::string_view origin(origin_view.data(), origin_view.size());  // absl's own type here
  std::map<std::string, Field, std::less<>> fields;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(absl::string_view(text.data(), text.size()), '\n')) {
    ++line_number;
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    auto bad = [&](const char* why) {
      return absl::InvalidArgumentError(
          absl::StrCat(origin, " line ", line_number, ": ", why, ": '", line, "'"));
    };
    const size_t colon = line.find(':');
    if (colon == absl::string_view::npos) return bad("expected 'Name: value [kB]'");
    const absl::string_view name = line.substr(0, colon);
    if (name.empty() || name.find_first_of(" \t") != absl::string_view::npos) return bad("bad field name");
    const std::vector<absl::string_view> words =
        absl::StrSplit(line.substr(colon + 1), absl::ByAnyChar(" \t"), absl::SkipEmpty());
    Field field;
    if (words.empty() || words.size() > 2) return bad("expected 'Name: value [kB]'");
    if (!absl::SimpleAtoi(words[0], &field.value)) return bad("value is not a whole number");
    if (words.size() == 2) {
      if (words[1] != "kB") return bad("unknown unit (only kB)");
      if (field.value > kMaxKb) return bad("value too large");
      field.in_kb = true;
    }
    if (!fields.emplace(std::string(name), field).second) return bad("field repeated");
  }

  auto bytes = [&](const char* name) -> absl::StatusOr<uint64_t> {
    auto it = fields.find(name);
    if (!it->second.in_kb) return absl::InvalidArgumentError(absl::StrCat(origin, ": ", name, " has no kB unit"));
    return it->second.value * 1024;
  };
  if (fields.count("MemAvailable")) return bytes("MemAvailable");

  const char* const kEstimate[] = {"MemFree", "Buffers", "Cached"};
  std::vector<const char*> missing;
  for (const char* name : kEstimate) {
    if (!fields.count(name)) missing.push_back(name);
  }
  if (!missing.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": no MemAvailable, and no ",
                                                   absl::StrJoin(missing, "/"), " to estimate it from"));
  }
  uint64_t total = 0;
  for (const char* name : kEstimate) {
    ASSIGN_OR_RETURN(auto part, bytes(name));
    if (part > std::numeric_limits<uint64_t>::max() - total) {
      return absl::InvalidArgumentError(absl::StrCat(origin, ": MemFree + Buffers + Cached overflows"));
    }
    total += part;
  }
  return total;
}

absl::StatusOr<uint64_t> ReadAvailableBytes(const std::string& path) {
  ASSIGN_OR_RETURN(auto text, ReadFile(path));
  return AvailableBytesFromMeminfo(text, path);
}

}  // namespace spriteforge::engine
