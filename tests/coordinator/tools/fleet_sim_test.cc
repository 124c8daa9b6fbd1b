// Simulated fleets against a real coordinator: hundreds of workers keep their GPUs busy,
// jobs share them by priority and in turns, and failures lose no image. Each test runs
// spriteforge-fleet-sim and reads its JSON report.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace {

nlohmann::json RunSim(const std::string& name, const std::vector<std::string>& args) {
  // One folder per process: two runs of the suite at once must not share files.
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("fleet_sim_test_" + name + "_" + std::to_string(getpid()))).string();
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
  std::filesystem::create_directories(dir);
  std::string command = std::string(SPRITEFORGE_FLEET_SIM_BIN) + " --coordinator " SPRITEFORGE_COORDINATOR_BIN +
                        " --work-dir " + dir + "/work --report " + dir + "/report.json";
  for (const std::string& a : args) command += " " + a;
  command += " > " + dir + "/stdout.json 2> " + dir + "/stderr.txt";
  const int rc = std::system(command.c_str());
  EXPECT_EQ(rc, 0) << command << "\nsee " << dir;
  std::ifstream in(dir + "/report.json");
  nlohmann::json report = nlohmann::json::parse(in, nullptr, false);
  EXPECT_FALSE(report.is_discarded()) << "no report in " << dir;
  if (!report.is_discarded() && rc == 0 && !::testing::Test::HasFailure()) std::filesystem::remove_all(dir);
  return report.is_discarded() ? nlohmann::json::object() : report;
}

// 200 workers and 20,000 images, 10 simulated seconds per real second: a ready worker
// gets its next batch in well under a batch's render time, so the GPUs idle at most 1%.
TEST(FleetSim, TwoHundredWorkersKeepTheirGpusBusy) {
  const nlohmann::json r = RunSim("busy", {"--workers 200", "--images 20000", "--time-scale 10",
                                           "--size 128x128", "--render-size 1024x1024"});
  ASSERT_TRUE(r.contains("fleet"));
  EXPECT_TRUE(r["finished"].get<bool>());
  EXPECT_EQ(r["coordinator"]["images_total"].get<int64_t>(), 20000);
  EXPECT_EQ(r["coordinator"]["items"]["done"].get<int64_t>(), 20000);
  EXPECT_EQ(r["coordinator"]["exit_code"].get<int>(), 0);
  const nlohmann::json& fleet = r["fleet"];
  EXPECT_GT(fleet["ready_to_assignment_ms"]["count"].get<int64_t>(), 1000);
  EXPECT_LE(fleet["gpu_idle_fraction"].get<double>(), 0.01) << fleet.dump(2);
  EXPECT_GT(fleet["gpu_busy_s"].get<double>(), 0);
}

// Ten jobs at two priorities: the higher ones first, and each of a priority gets the same
// share while all of them have images left.
TEST(FleetSim, JobsShareByPriorityAndInTurns) {
  const nlohmann::json r = RunSim("fair", {"--workers 50", "--images 8000", "--jobs 10", "--priorities 0,5",
                                           "--time-scale 20", "--size 128x128", "--render-size 1024x1024"});
  ASSERT_TRUE(r.contains("fleet"));
  EXPECT_TRUE(r["finished"].get<bool>());
  const nlohmann::json& fairness = r["fleet"]["fairness"];
  EXPECT_EQ(fairness["priority_inversions"]["images"].get<int64_t>(), 0) << fairness.dump(2);
  EXPECT_LE(fairness["round_robin_max_share_error"].get<double>(), 0.05) << fairness.dump(2);
  for (const auto& level : fairness["levels"]) EXPECT_TRUE(level.contains("round_robin")) << level.dump();
}

// Out-of-memory failures and crashed workers: their batches return to the queue, and every
// image ends made or failed, none lost. (A single image that runs out of memory counts as
// the item's failure, so with random failures an item can fail for good.)
TEST(FleetSim, FailuresLoseNoImage) {
  const nlohmann::json r = RunSim("failures", {"--workers 40", "--images 3000", "--time-scale 20", "--size 128x128",
                                               "--render-size 1024x1024", "--oom-rate 0.05", "--crash-rate 0.03",
                                               "--reconnect-seconds 20", "--link-delay-ms 20"});
  ASSERT_TRUE(r.contains("fleet"));
  EXPECT_TRUE(r["finished"].get<bool>());
  const nlohmann::json& items = r["coordinator"]["items"];
  EXPECT_EQ(items["total"].get<int64_t>(), 3000);
  EXPECT_EQ(items["done"].get<int64_t>() + items["failed"].get<int64_t>(), 3000) << items.dump();
  EXPECT_GE(items["done"].get<int64_t>(), 2990) << items.dump();
  EXPECT_EQ(r["coordinator"]["images_total"].get<int64_t>(), items["done"].get<int64_t>());
  EXPECT_GT(r["fleet"]["failures_injected"]["out_of_memory"].get<int64_t>(), 0);
  EXPECT_GT(r["fleet"]["failures_injected"]["crashes"].get<int64_t>(), 0);
}

}  // namespace
