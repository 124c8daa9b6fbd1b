#include "spriteforge/common/flags.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace spriteforge {

absl::StatusOr<Flags> Flags::Parse(const std::vector<std::string>& args, const std::set<std::string>& valued,
                                   const std::set<std::string>& switches) {
  Flags flags;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg.size() < 3 || arg.compare(0, 2, "--") != 0) {
      flags.positional_.push_back(arg);
      continue;
    }
    std::string name = arg, value;
    const size_t eq = arg.find('=');
    const bool inline_value = eq != std::string::npos;
    if (inline_value) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    }
    if (switches.count(name)) {
      if (inline_value) return absl::InvalidArgumentError(absl::StrCat(name, " takes no value"));
      flags.values_[name].push_back("1");
    } else if (valued.count(name)) {
      if (!inline_value) {
        if (i + 1 >= args.size()) return absl::InvalidArgumentError(absl::StrCat(name, " needs a value"));
        value = args[++i];
      }
      flags.values_[name].push_back(value);
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag ", name));
    }
  }
  return flags;
}

std::string Flags::Get(const std::string& flag, const std::string& fallback) const {
  auto it = values_.find(flag);
  return it == values_.end() ? fallback : it->second.back();
}

std::vector<std::string> Flags::All(const std::string& flag) const {
  auto it = values_.find(flag);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

absl::StatusOr<int> Flags::GetInt(const std::string& flag, int fallback) const {
  if (!Has(flag)) return fallback;
  int v = 0;
  if (!absl::SimpleAtoi(Get(flag), &v)) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": '", Get(flag), "' is not an integer"));
  }
  return v;
}

absl::StatusOr<double> Flags::GetDouble(const std::string& flag, double fallback) const {
  if (!Has(flag)) return fallback;
  double v = 0;
  if (!absl::SimpleAtod(Get(flag), &v)) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": '", Get(flag), "' is not a number"));
  }
  return v;
}

}  // namespace spriteforge
