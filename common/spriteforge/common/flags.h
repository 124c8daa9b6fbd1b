// Command-line flags for the spriteforge commands: "--name value" and "--switch", with
// positional arguments kept in order. Unknown flags and missing values are errors that
// name the flag, so every command rejects bad input with one clear line.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace spriteforge {

class Flags {
 public:
  // `valued`: flags that take a value; `switches`: flags that do not.
  static absl::StatusOr<Flags> Parse(const std::vector<std::string>& args, const std::set<std::string>& valued,
                                     const std::set<std::string>& switches);

  bool Has(const std::string& flag) const { return values_.count(flag) > 0; }
  // The last value given, or `fallback`.
  std::string Get(const std::string& flag, const std::string& fallback = "") const;
  std::vector<std::string> All(const std::string& flag) const;
  absl::StatusOr<int> GetInt(const std::string& flag, int fallback) const;
  absl::StatusOr<double> GetDouble(const std::string& flag, double fallback) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positional_;
};

}  // namespace spriteforge
