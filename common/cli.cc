#include "common/cli.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "common/text.h"

namespace spriteforge::cli {
namespace {

// The known name closest to `word`, when it is close enough to be a typo; else "".
std::string Closest(const std::string& word, const std::vector<std::string>& names) {
  std::string best;
  size_t best_distance = std::max<size_t>(2, word.size() / 3) + 1;
  for (const std::string& name : names) {
    const size_t d = EditDistance(word, name);
    if (d < best_distance) best = name, best_distance = d;
  }
  return best;
}

// "unknown command 'x'" or "unknown flag --x", with the closest name: the first word left
// over that the innermost command does not know.
std::string Unknown(const CLI::App& command, const std::vector<std::string>& left) {
  for (const std::string& word : left) {
    if (word.rfind("--", 0) == 0) {
      std::vector<std::string> flags;
      for (const CLI::Option* o : command.get_options()) {
        for (const std::string& n : o->get_lnames()) flags.push_back("--" + n);
      }
      const std::string flag = word.substr(0, word.find('='));
      const std::string near = Closest(flag, flags);
      return "unknown flag " + flag + (near.empty() ? "" : "; did you mean " + near + "?");
    }
    if (!command.get_subcommands({}).empty() && command.get_subcommands().empty()) {
      std::vector<std::string> names;
      for (const CLI::App* sub : command.get_subcommands({})) names.push_back(sub->get_name());
      const std::string near = Closest(word, names);
      return "unknown command '" + word + "'" + (near.empty() ? "" : "; did you mean " + near + "?");
    }
  }
  return "";
}

// "--steps: 'many' is not an integer" for CLI11's "Could not convert: --steps = many".
std::string ConversionMessage(const CLI::App& command, const std::string& what) {
  const std::string prefix = "Could not convert: ";
  const size_t eq = what.find(" = ");
  if (what.rfind(prefix, 0) != 0 || eq == std::string::npos) return what;
  const std::string name = what.substr(prefix.size(), eq - prefix.size());
  const std::string value = what.substr(eq + 3);
  std::string kind = "valid";
  if (const CLI::Option* option = command.get_option_no_throw(name)) {
    const std::string type = option->get_type_name();
    if (type.rfind("UINT", 0) == 0) kind = "a non-negative integer";
    else if (type.rfind("INT", 0) == 0) kind = "an integer";
    else if (type.rfind("FLOAT", 0) == 0) kind = "a number";
  }
  return name + ": '" + value + "' is not " + kind;
}

}  // namespace

const char* Version() { return SPRITEFORGE_VERSION; }

void Configure(CLI::App& app) {
  app.option_defaults()->always_capture_default();
  app.set_version_flag("--version", std::string(app.get_name()) + " " + Version());
  app.get_formatter()->column_width(34);
}

void ReadEnvironment(CLI::App& app) {
  for (CLI::Option* option : app.get_options()) {
    if (option->get_lnames().empty()) continue;
    const std::string name = option->get_lnames().front();
    if (name == "help" || name == "version") continue;
    std::string env = "SPRITEFORGE_";
    for (char c : name) env += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    option->envname(env);
  }
}

void AddLogFlags(CLI::App& app, LogOptions* options) {
  app.add_option("--log-level", options->level, "Least severe messages logged")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  app.add_option("--log-format", options->format, "text, or json: one object per line for log collectors")
      ->check(CLI::IsMember({"text", "json"}));
}

int Parse(CLI::App& app, int argc, const char* const* argv) {
  try {
    app.parse(argc, argv);
    return -1;
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // The innermost subcommand given names the command line that was wrong.
    std::string command = app.get_name();
    const CLI::App* innermost = &app;
    while (!innermost->get_subcommands().empty()) {
      innermost = innermost->get_subcommands().front();
      command += " " + innermost->get_name();
    }
    std::string message = e.what();
    if (dynamic_cast<const CLI::ConversionError*>(&e)) message = ConversionMessage(*innermost, message);
    if (dynamic_cast<const CLI::ExtrasError*>(&e) || dynamic_cast<const CLI::RequiredError*>(&e)) {
      if (std::string unknown = Unknown(*innermost, innermost->remaining()); !unknown.empty()) message = unknown;
    }
    std::fprintf(stderr, "%s: error: %s (see %s --help)\n", command.c_str(), message.c_str(), command.c_str());
    return 2;
  }
}

}  // namespace spriteforge::cli
