// Command lines: flags from the environment, flags over the environment, exit codes.
#include "common/cli.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace spriteforge {
namespace {

struct Parsed {
  int code;
  int lease;
  std::string db;
};

Parsed ParseCoordinatorLike(std::vector<const char*> argv) {
  CLI::App app("test", "spriteforge-test");
  cli::Configure(app);
  Parsed p{0, 15, ""};
  app.add_option("--lease-seconds", p.lease, "Lease");
  app.add_option("--db", p.db, "Database")->required();
  cli::ReadEnvironment(app);
  argv.insert(argv.begin(), "spriteforge-test");
  p.code = cli::Parse(app, static_cast<int>(argv.size()), argv.data());
  return p;
}

TEST(CliTest, FlagsComeFromTheEnvironmentUnlessGiven) {
  setenv("SPRITEFORGE_LEASE_SECONDS", "7", 1);
  setenv("SPRITEFORGE_DB", "env.db", 1);
  Parsed from_env = ParseCoordinatorLike({});
  EXPECT_EQ(from_env.code, -1);
  EXPECT_EQ(from_env.lease, 7);
  EXPECT_EQ(from_env.db, "env.db");
  Parsed given = ParseCoordinatorLike({"--lease-seconds", "9"});
  EXPECT_EQ(given.lease, 9);
  unsetenv("SPRITEFORGE_LEASE_SECONDS");
  unsetenv("SPRITEFORGE_DB");
}

TEST(CliTest, UsageErrorsExitWithTwoAndHelpWithZero) {
  EXPECT_EQ(ParseCoordinatorLike({}).code, 2) << "--db is required";
  EXPECT_EQ(ParseCoordinatorLike({"--db", "x", "--lease-seconds", "soon"}).code, 2);
  EXPECT_EQ(ParseCoordinatorLike({"--db", "x", "--leese-seconds", "3"}).code, 2);
  EXPECT_EQ(ParseCoordinatorLike({"--help"}).code, 0);
  EXPECT_EQ(ParseCoordinatorLike({"--version"}).code, 0);
}

}  // namespace
}  // namespace spriteforge
