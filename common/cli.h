// Command lines of every spriteforge program, on CLI11: per-flag help with defaults,
// --version, subcommand help, and one-line errors with exit code 2.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "common/logging.h"

namespace spriteforge::cli {

// The version every program reports (the project's version).
const char* Version();

// An App that shows defaults in --help and answers --version.
void Configure(CLI::App& app);

// Lets SPRITEFORGE_<FLAG_NAME> (upper case, '-' as '_') stand in for every long flag of
// `app` not given on the command line, as containers configure processes.
void ReadEnvironment(CLI::App& app);

// --log-level and --log-format, filling `options`.
void AddLogFlags(CLI::App& app, LogOptions* options);

// Parses argv; returns -1 to go on, else the exit code: 0 after --help or --version
// (printed to stdout), 2 after a usage error (printed to stderr as one line:
// "<command>: error: <what> (see <command> --help)").
int Parse(CLI::App& app, int argc, const char* const* argv);

}  // namespace spriteforge::cli
