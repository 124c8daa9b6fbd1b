// The coordinator and the spriteforge client as a user meets them, as real processes and
// without workers: jobs for models nobody serves, watches across coordinator restarts,
// two coordinators on one port, --help, environment variables and JSON logs.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <google/protobuf/util/json_util.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "tests/system/cluster.h"

namespace spriteforge::testing {
namespace {

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

bool Contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A manifest of two images for a model no worker serves.
std::string UnservedManifest(const Cluster& cluster) {
  const std::string path = cluster.dir() + "/unserved.yaml";
  std::ofstream(path) << "name: unserved\nmodel: nobody-serves-this\nitems: [{prompt: a potion, count: 2}]\n";
  return path;
}

std::string SubmitOk(Cluster& cluster, const std::vector<std::string>& args) {
  auto r = cluster.Client(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return Trim(r.out);
}

TEST(ClientTest, WatchingAJobThatDoesNotExistSaysSo) {
  Cluster cluster(TempDir("watch_missing"));
  ASSERT_NO_FATAL_FAILURE(cluster.StartCoordinator());
  auto r = cluster.Client({"watch", "job-missing"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "spriteforge watch: no job job-missing\n");
  // Nor does fetching its results leave an empty folder behind.
  auto results = cluster.Client({"results", "job-missing", "--out", cluster.dir() + "/results"});
  EXPECT_EQ(results.exit_code, 1);
  EXPECT_FALSE(std::filesystem::exists(cluster.dir() + "/results"));
}

// `spriteforge-coordinator & spriteforge submit ...`: a client started before its coordinator
// listens waits for it (--wait-for) instead of failing with "Connection refused".
TEST(ClientTest, AClientStartedBeforeTheCoordinatorWaitsForIt) {
  Cluster cluster(TempDir("client_first"));
  const int port = FreePort();
  const std::string log = cluster.dir() + "/status.log";
  Process status({SPRITEFORGE_CLIENT_BIN, "--coordinator", "127.0.0.1:" + std::to_string(port), "status"}, log);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_TRUE(status.Running()) << Slurp(log);
  ASSERT_NO_FATAL_FAILURE(cluster.StartCoordinator(port));
  EXPECT_EQ(status.WaitFor(10), 0) << Slurp(log);
}

TEST(ClientTest, WatchFollowsAJobAcrossACoordinatorRestart) {
  Cluster cluster(TempDir("watch_restart"));
  const int port = FreePort();
  ASSERT_NO_FATAL_FAILURE(cluster.StartCoordinator(port));
  const std::string job_id = SubmitOk(cluster, {"submit", UnservedManifest(cluster)});
  const std::string log = cluster.dir() + "/watch.log";
  Process watch({SPRITEFORGE_CLIENT_BIN, "--coordinator", cluster.address(), "watch", job_id}, log);
  ASSERT_TRUE(WaitForText(log, "waiting: no connected worker serves model nobody-serves-this", 10)) << Slurp(log);

  cluster.KillCoordinator();
  ASSERT_TRUE(WaitForText(log, "lost the coordinator", 10)) << Slurp(log);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  EXPECT_TRUE(watch.Running()) << Slurp(log);
  ASSERT_NO_FATAL_FAILURE(cluster.StartCoordinator(port));  // same database and port
  ASSERT_TRUE(WaitForText(log, "reconnected", 15)) << Slurp(log);

  // The watch ends when the job does, with the job's outcome.
  ASSERT_EQ(cluster.Client({"cancel", job_id}).exit_code, 0);
  EXPECT_EQ(watch.WaitFor(15), 1) << Slurp(log);
  const std::string text = Slurp(log);
  EXPECT_TRUE(Contains(text, job_id + ": cancelled, 0 of 2 images")) << text;
  EXPECT_FALSE(Contains(text, "CANCELLED")) << text;
  // Off a terminal, progress is plain lines: no bars that nothing redraws.
  EXPECT_TRUE(Contains(text, job_id + ": 0/2 done")) << text;
  EXPECT_FALSE(Contains(text, "[...")) << text;
}

TEST(ClientTest, AJobForAModelNoWorkerServesSaysSoAndWaitsByDefault) {
  Cluster cluster(TempDir("unserved_wait"));
  ASSERT_NO_FATAL_FAILURE(cluster.StartCoordinator());
  const std::string job_id = SubmitOk(cluster, {"submit", UnservedManifest(cluster)});
  std::this_thread::sleep_for(std::chrono::seconds(1));
  auto status = cluster.Client({"status", job_id});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_TRUE(Contains(status.out, "queued")) << status.out;
  EXPECT_TRUE(Contains(status.out, "waiting: no connected worker serves model nobody-serves-this")) << status.out;
  // --json prints the API's message (GET /v1/jobs/JOB?items=true, running items only).
  const std::string text = cluster.Client({"status", job_id, "--json"}).out;
  v1::GetJobResponse parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(text, &parsed).ok()) << text;
  EXPECT_EQ(parsed.job().id(), job_id);
  EXPECT_EQ(parsed.items_size(), 0);
  auto json = nlohmann::json::parse(text);
  EXPECT_EQ(json["job"]["state"], "JOB_QUEUED");
  EXPECT_EQ(json["job"]["waiting_reason"], "no connected worker serves model nobody-serves-this");
  EXPECT_EQ(json["job"]["counts"]["queued"], 2);
  EXPECT_EQ(json["job"]["finished_unix_ms"], "0");  // 64-bit integers are strings in this mapping
  const std::string list = cluster.Client({"status", "--json"}).out;
  v1::ListJobsResponse jobs;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(list, &jobs).ok()) << list;
  ASSERT_EQ(jobs.jobs_size(), 1);
  EXPECT_EQ(jobs.jobs(0).waiting_reason(), "no connected worker serves model nobody-serves-this");
  const std::string workers = cluster.Client({"workers", "--json"}).out;
  EXPECT_EQ(nlohmann::json::parse(workers), nlohmann::json::parse(R"({"workers": []})")) << workers;
}

TEST(ClientTest, AJobForAModelNoWorkerServesFailsAfterTheConfiguredWait) {
  Cluster cluster(TempDir("unserved_timeout"));
  ASSERT_NO_FATAL_FAILURE(cluster.StartCoordinator(0, {"--unserved-model-timeout", "2"}));
  const auto start = std::chrono::steady_clock::now();
  auto r = cluster.Client({"submit", UnservedManifest(cluster), "--wait"});
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_GE(seconds, 1.5);
  EXPECT_LT(seconds, 20);
  const std::string job_id = Trim(r.out);
  EXPECT_TRUE(Contains(r.err, "waiting: no connected worker serves model nobody-serves-this")) << r.err;
  EXPECT_TRUE(Contains(r.err, "failed #0: no connected worker served model nobody-serves-this for 2 s")) << r.err;
  EXPECT_TRUE(Contains(r.err, job_id + ": failed, 0 of 2 images")) << r.err;

  const v1::GetJobResponse job = cluster.Job(job_id, true);
  EXPECT_EQ(job.job().state(), v1::JOB_FAILED);
  EXPECT_EQ(job.job().waiting_reason(), "");
  ASSERT_EQ(job.items_size(), 2);
  for (const v1::Item& it : job.items()) {
    EXPECT_EQ(it.state(), v1::ITEM_FAILED);
    EXPECT_EQ(it.failure(), v1::FAILURE_MODEL_UNAVAILABLE);
  }
  // The log names states, not their numbers.
  const std::string log = Slurp(cluster.coordinator_log());
  EXPECT_TRUE(Contains(log, "job " + job_id + " finished: failed")) << log;
}

// SIGHUP reloads --auth: a rotated token works at once and the old one is refused; a
// broken file keeps the tokens in force and says why in one log line.
TEST(ClientTest, SighupReloadsTheTokenFileAndABrokenFileKeepsTheOldTokens) {
  Cluster cluster(TempDir("auth_reload"));
  const std::string auth = cluster.dir() + "/auth.yaml";
  const std::string old_token = "ops-old-token-0123456789", new_token = "ops-new-token-0123456789";
  std::ofstream(auth) << "tokens: [{name: ops, token: " << old_token << ", role: admin}]\n";
  cluster.SetClientSecurity({"", "", "", old_token});
  ASSERT_NO_FATAL_FAILURE(cluster.StartCoordinator(0, {"--auth", auth}));
  const std::string log = cluster.coordinator_log();
  const std::string job_id = SubmitOk(cluster, {"submit", UnservedManifest(cluster)});
  auto status_with = [&](const std::string& token) {
    return RunCommand({SPRITEFORGE_CLIENT_BIN, "--coordinator", cluster.address(), "--token", token, "status", job_id});
  };

  std::ofstream(auth) << "tokens:\n  - {name: ops, token: " << new_token << ", role: admin}\n"
                      << "  - {name: dash, token: dash-token-0123456789, role: viewer}\n";
  kill(cluster.coordinator_pid(), SIGHUP);
  ASSERT_TRUE(WaitForText(log, "SIGHUP: 2 tokens reloaded from " + auth, 5)) << Slurp(log);
  EXPECT_EQ(status_with(new_token).exit_code, 0);
  EXPECT_EQ(status_with("dash-token-0123456789").exit_code, 0);
  EXPECT_EQ(Trim(status_with(old_token).err), "spriteforge status: unknown token");

  std::ofstream(auth) << "tokens: [{name: ops, token: short, role: admin}]\n";
  kill(cluster.coordinator_pid(), SIGHUP);
  ASSERT_TRUE(WaitForText(log, "SIGHUP: keeping the current tokens: " + auth +
                                   ": tokens[0].token: must be at least 16 characters", 5))
      << Slurp(log);
  EXPECT_EQ(status_with(new_token).exit_code, 0);  // the job and the tokens are as they were
  EXPECT_TRUE(Contains(status_with(new_token).out, "queued"));
}

TEST(ClientTest, ASecondCoordinatorOnTheSameAddressRefusesToStart) {
  Cluster cluster(TempDir("second_coordinator"));
  ASSERT_NO_FATAL_FAILURE(cluster.StartCoordinator());
  const std::string dir = cluster.dir() + "/second";
  Process second({SPRITEFORGE_COORDINATOR_BIN, "--listen", cluster.address(), "--http", "127.0.0.1:0", "--db",
                  dir + ".db", "--output", dir},
                 dir + ".log");
  EXPECT_EQ(second.WaitFor(10), 1) << "the second coordinator kept running";
  EXPECT_TRUE(Contains(Slurp(dir + ".log"), "cannot listen on " + cluster.address() + ": address in use"))
      << Slurp(dir + ".log");
  // One line, no gRPC dump, and no database or blobs/ left behind; the HTTP port alike.
  const std::string second_log = Slurp(dir + ".log");
  EXPECT_EQ(std::count(second_log.begin(), second_log.end(), '\n'), 1) << second_log;
  EXPECT_FALSE(std::filesystem::exists(dir + ".db"));
  const std::string fresh = cluster.dir() + "/fresh";
  std::filesystem::create_directories(fresh);
  Process http({SPRITEFORGE_COORDINATOR_BIN, "--listen", "127.0.0.1:0", "--http", cluster.http_address(), "--db",
                fresh + "/jobs.db", "--output", fresh + "/out"},
               dir + "-http.log");
  EXPECT_EQ(http.WaitFor(10), 1) << "the coordinator on a used HTTP port kept running";
  EXPECT_TRUE(Contains(Slurp(dir + "-http.log"), "cannot listen for HTTP on " + cluster.http_address()))
      << Slurp(dir + "-http.log");
  EXPECT_FALSE(std::filesystem::exists(fresh + "/jobs.db"));
  EXPECT_FALSE(std::filesystem::exists(fresh + "/blobs"));
  // The first one serves on.
  EXPECT_EQ(cluster.Client({"status"}).exit_code, 0);
  EXPECT_EQ(cluster.HttpGet("/healthz"), "ok\n");
}

TEST(ClientTest, EveryCommandAnswersHelpWithItsFlagsAndDefaults) {
  auto help = RunCommand({SPRITEFORGE_COORDINATOR_BIN, "--help"});
  EXPECT_EQ(help.exit_code, 0);
  for (const char* part : {"--listen", "--unserved-model-timeout", "--lease-seconds INT:INT in [1 - 86400]=15",
                           "Env:SPRITEFORGE_LOG_LEVEL", "--log-format"}) {
    EXPECT_TRUE(Contains(help.out, part)) << part << "\n" << help.out;
  }
  EXPECT_TRUE(Contains(help.out, "backup --db FILE --out FILE")) << help.out;
  // backup is a command of its own: its help, its mistakes, and the likely intent of a typo.
  auto backup_help = RunCommand({SPRITEFORGE_COORDINATOR_BIN, "backup", "--help"});
  EXPECT_EQ(backup_help.exit_code, 0) << backup_help.err;
  EXPECT_TRUE(Contains(backup_help.out, "Usage: spriteforge-coordinator backup [OPTIONS]")) << backup_help.out;
  EXPECT_TRUE(Contains(backup_help.out, "--out TEXT REQUIRED")) << backup_help.out;
  auto no_out = RunCommand({SPRITEFORGE_COORDINATOR_BIN, "backup", "--db", "jobs.db"});
  EXPECT_EQ(no_out.exit_code, 2);
  EXPECT_EQ(no_out.err,
            "spriteforge-coordinator backup: error: --out is required (see spriteforge-coordinator backup --help)\n");
  auto misspelt = RunCommand({SPRITEFORGE_COORDINATOR_BIN, "bakup", "--db", "jobs.db", "--out", "copy.db"});
  EXPECT_EQ(misspelt.exit_code, 2);
  EXPECT_EQ(misspelt.err, "spriteforge-coordinator: error: unknown command 'bakup'; did you mean backup? (see "
                          "spriteforge-coordinator --help)\n");
  auto version = RunCommand({SPRITEFORGE_COORDINATOR_BIN, "--version"});
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_EQ(version.out, "spriteforge-coordinator 0.1.0\n");

  auto submit = RunCommand({SPRITEFORGE_CLIENT_BIN, "submit", "--help"});
  EXPECT_EQ(submit.exit_code, 0) << submit.err;
  for (const char* part : {"MANIFEST", "--wait", "--idempotency-key", "--reconnect-for INT:NONNEGATIVE=300"}) {
    EXPECT_TRUE(Contains(submit.out, part)) << part << "\n" << submit.out;
  }
  EXPECT_EQ(RunCommand({SPRITEFORGE_CLIENT_BIN, "--version"}).out, "spriteforge 0.1.0\n");
  for (const char* command : {"watch", "status", "cancel", "workers", "results", "pixelate", "sheet"}) {
    EXPECT_EQ(RunCommand({SPRITEFORGE_CLIENT_BIN, command, "--help"}).exit_code, 0) << command;
  }

  // Mistakes: one line, exit code 2, the likely intent.
  auto typo = RunCommand({SPRITEFORGE_CLIENT_BIN, "submit", "m.yaml", "--wiat"});
  EXPECT_EQ(typo.exit_code, 2);
  EXPECT_EQ(typo.err, "spriteforge submit: error: unknown flag --wiat; did you mean --wait? (see spriteforge submit --help)\n");
  auto command = RunCommand({SPRITEFORGE_CLIENT_BIN, "stauts"});
  EXPECT_EQ(command.exit_code, 2);
  EXPECT_EQ(command.err, "spriteforge: error: unknown command 'stauts'; did you mean status? (see spriteforge --help)\n");
}

// Containers configure processes with environment variables.
TEST(ClientTest, TheCoordinatorTakesItsFlagsFromTheEnvironmentAndLogsJson) {
  const std::string dir = TempDir("environment");
  const std::string ready = dir + "/ready.json", log = dir + "/coordinator.log";
  setenv("SPRITEFORGE_LISTEN", "127.0.0.1:0", 1);
  setenv("SPRITEFORGE_HTTP", "127.0.0.1:0", 1);
  setenv("SPRITEFORGE_DB", (dir + "/db.sqlite").c_str(), 1);
  setenv("SPRITEFORGE_OUTPUT", (dir + "/out").c_str(), 1);
  setenv("SPRITEFORGE_LOG_FORMAT", "json", 1);
  Process coordinator({SPRITEFORGE_COORDINATOR_BIN, "--ready-file", ready}, log);
  for (const char* name : {"SPRITEFORGE_LISTEN", "SPRITEFORGE_HTTP", "SPRITEFORGE_DB", "SPRITEFORGE_OUTPUT",
                           "SPRITEFORGE_LOG_FORMAT"}) {
    unsetenv(name);
  }
  ASSERT_TRUE(WaitForText(ready, "grpc", 15)) << Slurp(log);
  ASSERT_TRUE(WaitForText(log, "serving gRPC", 5)) << Slurp(log);
  std::istringstream lines(Slurp(log));
  std::string line;
  int parsed = 0;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] != '{') continue;  // gRPC's own messages
    auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["level"], "info") << line;
    EXPECT_TRUE(j.contains("time") && j.contains("msg")) << line;
    ++parsed;
  }
  EXPECT_GE(parsed, 1) << Slurp(log);
  EXPECT_TRUE(std::filesystem::exists(dir + "/db.sqlite"));

  // A level from the command line: info messages stay out.
  const std::string quiet_log = dir + "/quiet.log";
  Process quiet({SPRITEFORGE_COORDINATOR_BIN, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--db",
                 dir + "/quiet.sqlite", "--output", dir + "/out", "--ready-file", dir + "/quiet.json",
                 "--log-level", "warn"},
                quiet_log);
  ASSERT_TRUE(WaitForText(dir + "/quiet.json", "grpc", 15)) << Slurp(quiet_log);
  EXPECT_FALSE(Contains(Slurp(quiet_log), "serving gRPC")) << Slurp(quiet_log);
}

}  // namespace
}  // namespace spriteforge::testing
