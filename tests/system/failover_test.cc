// Two coordinators on one PostgreSQL database, one leading and one standing by, as real
// processes with a real worker (the engine on the golden tiny model, CPU) and the client:
// the leader is killed with SIGKILL mid-job, the standby takes over and the job completes
// with every image exactly once in the database and on disk. Needs SPRITEFORGE_TEST_POSTGRES
// (deploy/postgres.sh) and SPRITEFORGE_GOLDEN; skips without them.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "tests/system/cluster.h"

namespace spriteforge::testing {
namespace {

using Clock = std::chrono::steady_clock;

std::string PostgresUrl() {
  const char* url = std::getenv("SPRITEFORGE_TEST_POSTGRES");
  return url ? url : "";
}

// The ready file's JSON once it exists and says `role`; empty after `seconds`.
nlohmann::json WaitForRole(const std::string& path, const std::string& role, double seconds) {
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  while (Clock::now() < end) {
    if (std::filesystem::exists(path)) {
      auto j = nlohmann::json::parse(Slurp(path), nullptr, false);
      if (j.is_object() && j.value("role", "") == role) return j;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return {};
}

std::unique_ptr<v1::SpriteForge::Stub> StubFor(const std::string& address) {
  return v1::SpriteForge::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
}

grpc::Status GetJob(v1::SpriteForge::Stub& stub, const std::string& id, v1::GetJobResponse* out, bool items = false) {
  v1::GetJobRequest request;
  request.set_job_id(id);
  request.set_include_items(items);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  return stub.GetJob(&ctx, request, out);
}

class FailoverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (GoldenModel().empty()) {
      if (std::getenv("SPRITEFORGE_REQUIRE_GOLDEN")) FAIL() << "golden folder missing";
      GTEST_SKIP() << "golden folder missing: set SPRITEFORGE_GOLDEN";
    }
    if (PostgresUrl().empty()) {
      GTEST_SKIP() << "SPRITEFORGE_TEST_POSTGRES is not set (deploy/postgres.sh starts a throwaway server and sets it)";
    }
    dir_ = TempDir("failover");
    schema_ = "failover_" + std::to_string(getpid());
    auto made = RunCommand({"/usr/bin/psql", PostgresUrl(), "-qc", "DROP SCHEMA IF EXISTS " + schema_ +
                                                                      " CASCADE; CREATE SCHEMA " + schema_});
    ASSERT_EQ(made.exit_code, 0) << made.err;
    db_ = PostgresUrl() + (PostgresUrl().find('?') == std::string::npos ? "?" : "&") +
          "options=-csearch_path%3D" + schema_;
  }
  void TearDown() override {
    if (!schema_.empty()) RunCommand({"/usr/bin/psql", PostgresUrl(), "-qc", "DROP SCHEMA " + schema_ + " CASCADE"});
  }
  // A coordinator on the shared database and the shared results folder.
  std::unique_ptr<Process> StartCoordinator(const std::string& name) {
    const std::string ready = dir_ + "/" + name + ".ready.json";
    std::filesystem::remove(ready);
    return std::make_unique<Process>(
        std::vector<std::string>{SPRITEFORGE_COORDINATOR_BIN, "--listen", "127.0.0.1:0", "--worker-listen", "127.0.0.1:0",
                                 "--http", "127.0.0.1:0",
                                 "--db", db_, "--output", dir_ + "/out", "--ready-file", ready, "--lease-seconds",
                                 "5", "--leader-lease-seconds", "3"},
        dir_ + "/coordinator-" + name + ".log");
  }
  std::string dir_, schema_, db_;
};

TEST_F(FailoverTest, TheStandbyTakesOverAKilledLeaderAndTheJobCompletesOnce) {
  auto a = StartCoordinator("a");
  const auto ready_a = WaitForRole(dir_ + "/a.ready.json", "leader", 30);
  ASSERT_FALSE(ready_a.empty()) << "coordinator a did not lead; see " << dir_;
  auto b = StartCoordinator("b");
  const auto ready_b = WaitForRole(dir_ + "/b.ready.json", "standby", 30);
  ASSERT_FALSE(ready_b.empty()) << "coordinator b did not stand by; see " << dir_;
  const std::string addr_a = ready_a["grpc"], addr_b = ready_b["grpc"];
  auto stub_a = StubFor(addr_a), stub_b = StubFor(addr_b);

  // The standby refuses with one line naming the leader, on gRPC and on HTTP.
  v1::GetJobResponse response;
  grpc::Status refused;
  for (int i = 0; i < 100; ++i) {  // it learns the leader's address on its first poll
    refused = GetJob(*stub_b, "any", &response);
    if (refused.error_message().find(addr_a) != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(refused.error_message(), "standby: leader is " + addr_a);
  const std::string http_b = ready_b["http"];
  httplib::Client http(http_b.substr(0, http_b.rfind(':')), std::stoi(http_b.substr(http_b.rfind(':') + 1)));
  auto health = http.Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 503);
  EXPECT_EQ(health->body, "standby: leader is " + addr_a + "\n");

  const std::string both = addr_a + "," + addr_b;
  // Workers on the coordinators' worker ports, which the standby refuses as well.
  const std::string workers_both = ready_a["worker_grpc"].get<std::string>() + "," +
                                   ready_b["worker_grpc"].get<std::string>();
  const std::string g = GoldenModel();
  Process worker({SPRITEFORGE_WORKER_BIN, "--coordinator", workers_both, "--model", g + "/tiny-sdxl.safetensors", "--config",
                  g + "/diffusers", "--tokenizer", g + "/tokenizer", "--model-name", "tiny-sdxl", "--worker-id", "w1",
                  "--max-batch", "4"},
                 dir_ + "/worker-w1.log");
  const std::string manifest = dir_ + "/slow.yaml";
  std::ofstream(manifest) << "name: slow\nmodel: tiny-sdxl\n"
                             "defaults: {width: 128, height: 128, steps: 8, cfg: 5.0, sampler: euler, schedule: normal}\n"
                             "items:\n  - {prompt: \"blue mana potion\", count: 16, seed: 1000}\n";
  auto submitted = RunCommand({SPRITEFORGE_CLIENT_BIN, "--coordinator", both, "submit", manifest});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  std::string job_id = submitted.out;
  while (!job_id.empty() && (job_id.back() == '\n' || job_id.back() == ' ')) job_id.pop_back();

  // A watch given both addresses follows the job through the failover.
  Process watch({SPRITEFORGE_CLIENT_BIN, "--coordinator", both, "watch", job_id, "--quiet"}, dir_ + "/watch.log");

  // Kill the leader once a few images are in, with the rest queued or running.
  const auto deadline = Clock::now() + std::chrono::seconds(120);
  while (Clock::now() < deadline) {
    if (GetJob(*stub_a, job_id, &response).ok() && response.job().counts().done() >= 4) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_GE(response.job().counts().done(), 4) << "see " << dir_;
  ASSERT_LT(response.job().counts().done(), 16) << "the job finished before the leader could be killed";
  const auto killed = Clock::now();
  a->Kill(SIGKILL);
  a->Wait();

  // The standby leads once the lease lapses, on the same addresses: it rewrites its ready
  // file once it serves as the leader.
  const auto led = WaitForRole(dir_ + "/b.ready.json", "leader", 30);
  ASSERT_FALSE(led.empty()) << "coordinator b did not take over; see " << dir_;
  const auto failover_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killed).count();
  std::printf("failover: the standby served %lld ms after the leader was killed (lease 3 s)\n",
              static_cast<long long>(failover_ms));
  RecordProperty("failover_ms", std::to_string(failover_ms));
  EXPECT_LT(failover_ms, 3000 + 1000 + 2000) << "lease, one poll, recovery";
  EXPECT_EQ(led["grpc"], addr_b);
  // A new channel: the old one saw the standby's server go and backs off before redialling.
  stub_b = StubFor(addr_b);
  grpc::Status answer = GetJob(*stub_b, job_id, &response);
  ASSERT_TRUE(answer.ok()) << answer.error_message() << "; see " << dir_;

  // The worker moved to b by itself; the job completes there.
  while (Clock::now() < killed + std::chrono::seconds(180)) {
    if (GetJob(*stub_b, job_id, &response).ok() && response.job().state() == v1::JOB_DONE) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(response.job().state(), v1::JOB_DONE) << "see " << dir_;
  ASSERT_TRUE(GetJob(*stub_b, job_id, &response, true).ok());
  EXPECT_EQ(response.job().counts().done(), 16);
  ASSERT_EQ(response.items_size(), 16);
  std::set<int> indexes;
  for (const v1::Item& it : response.items()) {
    EXPECT_EQ(it.state(), v1::ITEM_DONE) << it.index();
    EXPECT_TRUE(std::filesystem::exists(it.image_path())) << it.image_path();
    indexes.insert(it.index());
  }
  EXPECT_EQ(indexes.size(), 16u);
  // On disk: one image per item in the shared folder, none twice, no leftovers.
  std::set<int> on_disk;
  const std::regex png(R"((\d+)_(\d+)\.png)");
  for (const auto& e : std::filesystem::directory_iterator(dir_ + "/out/" + job_id)) {
    std::smatch m;
    const std::string f = e.path().filename().string();
    EXPECT_EQ(f.find(".tmp"), std::string::npos) << f;
    if (!std::regex_match(f, m, png)) continue;
    EXPECT_TRUE(on_disk.insert(std::stoi(m[1])).second) << "item " << m[1] << " written twice";
  }
  EXPECT_EQ(on_disk.size(), 16u);
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/out/" + job_id + "/job.json"));

  EXPECT_EQ(watch.WaitFor(60), 0) << Slurp(dir_ + "/watch.log");
  // The client given both addresses finds the new leader.
  auto status = RunCommand({SPRITEFORGE_CLIENT_BIN, "--coordinator", both, "status", job_id});
  EXPECT_EQ(status.exit_code, 0) << status.err;
  EXPECT_TRUE(WaitForText(dir_ + "/coordinator-b.log", "taking over from", 1)) << "see " << dir_;
}

}  // namespace
}  // namespace spriteforge::testing
