// The distributed service end to end: real coordinator, worker and client processes on
// 127.0.0.1, the real engine on the golden tiny model on the CPU.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <thread>

#include <google/protobuf/util/json_util.h>
#include <nlohmann/json.hpp>

#include "common/files.h"
#include "common/png.h"
#include "tests/system/cluster.h"

namespace spriteforge::testing {
namespace {

#define REQUIRE_GOLDEN()                                                                    \
  do {                                                                                      \
    if (GoldenModel().empty()) {                                                            \
      if (std::getenv("SPRITEFORGE_REQUIRE_GOLDEN")) FAIL() << "golden folder missing";     \
      GTEST_SKIP() << "golden folder missing: set SPRITEFORGE_GOLDEN";                      \
    }                                                                                       \
  } while (0)

std::string Write(const std::string& dir, const std::string& name, const std::string& text) {
  const std::string path = dir + "/" + name;
  std::ofstream(path) << text;
  return path;
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// The result PNGs of a job by item index; fails the test on duplicates.
std::map<int, std::string> ResultPngs(const std::string& job_dir) {
  std::map<int, std::string> out;
  const std::regex name(R"((\d+)_(\d+)\.png)");
  for (const auto& e : std::filesystem::directory_iterator(job_dir)) {
    std::smatch m;
    const std::string f = e.path().filename().string();
    if (!std::regex_match(f, m, name)) continue;
    const int index = std::stoi(m[1]);
    EXPECT_FALSE(out.count(index)) << "item " << index << " produced twice";
    out[index] = e.path().string();
  }
  return out;
}

// Every item of the job done exactly once, with one image file each.
void ExpectCompleteOnce(Cluster& cluster, const std::string& job_id, int total) {
  auto job = cluster.Job(job_id, true);
  EXPECT_EQ(job.job().state(), v1::JOB_DONE);
  EXPECT_EQ(job.job().counts().done(), total);
  ASSERT_EQ(job.items_size(), total);
  const auto pngs = ResultPngs(cluster.output() + "/" + job_id);
  EXPECT_EQ(static_cast<int>(pngs.size()), total);
  for (const v1::Item& it : job.items()) {
    EXPECT_EQ(it.state(), v1::ITEM_DONE) << it.index();
    EXPECT_TRUE(std::filesystem::exists(it.image_path())) << it.image_path();
    EXPECT_TRUE(pngs.count(it.index())) << it.index();
  }
  EXPECT_TRUE(std::filesystem::exists(cluster.output() + "/" + job_id + "/job.json"));
}

std::string SlowManifest(int count, int steps) {
  return "name: slow\nmodel: tiny-sdxl\n"
         "defaults: {width: 128, height: 128, steps: " + std::to_string(steps) +
         ", cfg: 5.0, sampler: euler, schedule: normal}\n"
         "items:\n  - {prompt: \"blue mana potion\", count: " + std::to_string(count) + ", seed: 1000}\n";
}

std::string SubmitOk(Cluster& cluster, const std::string& manifest) {
  auto r = cluster.Client({"submit", manifest});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return Trim(r.out);
}

// Polls the coordinator until worker `id` holds at least `items` items (its batches in
// flight, queued ahead included); false after 30 s.
bool WaitForWorkerHolding(Cluster& cluster, const std::string& id, int items) {
  for (int i = 0; i < 3000; ++i) {
    v1::ListWorkersResponse workers;
    grpc::ClientContext ctx;
    cluster.Stub().ListWorkers(&ctx, v1::ListWorkersRequest(), &workers);
    for (const auto& w : workers.workers()) {
      if (w.id() == id && w.running_items() >= items) return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

// Items that needed more than one attempt; each of them must have ended on `worker`.
int ItemsRunAgainOn(Cluster& cluster, const std::string& job_id, const std::string& worker) {
  int again = 0;
  const v1::GetJobResponse job = cluster.Job(job_id, true);
  for (const v1::Item& it : job.items()) {
    if (it.attempts() < 2) continue;
    EXPECT_EQ(it.worker_id(), worker) << "item " << it.index();
    ++again;
  }
  return again;
}

TEST(ServiceTest, PotionsThroughTwoWorkersMatchTheGenerateCommandWhateverTheBatch) {
  REQUIRE_GOLDEN();
  Cluster cluster(TempDir("potions"));
  cluster.StartCoordinator();
  cluster.StartWorker("w1", {"--max-batch", "8"});
  cluster.StartWorker("w2", {"--max-batch", "5"});
  const std::string manifest = std::string(SPRITEFORGE_SOURCE_DIR) + "/workflows/potions.yaml";
  auto submitted = cluster.Client({"submit", manifest, "--wait", "--idempotency-key", "potions-1"});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  const std::string job_id = Trim(submitted.out);
  ExpectCompleteOnce(cluster, job_id, 24);

  // Same key: the same job, nothing new queued.
  auto again = cluster.Client({"submit", manifest, "--idempotency-key", "potions-1"});
  EXPECT_EQ(Trim(again.out), job_id);

  // Both workers took part; the sidecars say who made what, in which batch size.
  std::set<std::string> workers;
  std::set<int> batch_sizes;
  for (const auto& [index, png] : ResultPngs(cluster.output() + "/" + job_id)) {
    auto meta = nlohmann::json::parse(*ReadFile(png.substr(0, png.size() - 4) + ".json"));
    workers.insert(meta["worker"].get<std::string>());
    batch_sizes.insert(meta["batch_size"].get<int>());
    EXPECT_EQ(meta["index"], index);
    EXPECT_GT(meta["timings_ms"]["total"].get<double>(), 0);
  }
  EXPECT_EQ(workers, (std::set<std::string>{"w1", "w2"}));

  // Each image equals spriteforge-generate's with the same parameters and seed, within one
  // 8-bit level, whatever batch it ran in.
  const std::string g = GoldenModel();
  const std::string ref = cluster.dir() + "/reference";
  struct Family { const char* prompt; const char* negative; uint64_t seed; int first_index; };
  for (const Family& f : {Family{"red potion bottle icon", nullptr, 100, 0},
                          Family{"a pixel art knight with a sword, 16-bit sprite", "blurry", 500, 12}}) {
    std::vector<std::string> argv = {SPRITEFORGE_GENERATE_BIN, "--model", g + "/tiny-sdxl.safetensors", "--config",
                                     g + "/diffusers", "--tokenizer", g + "/tokenizer", "--width", "128", "--height",
                                     "128", "--steps", "4", "--cfg", "5", "--sampler", "euler", "--schedule", "normal",
                                     "--batch", "3", "--out", ref + "/" + std::to_string(f.first_index)};
    for (int i = 0; i < 12; ++i) {
      argv.insert(argv.end(), {"--prompt", f.prompt, "--seed", std::to_string(f.seed + i)});
      if (f.negative) argv.insert(argv.end(), {"--negative", f.negative});
    }
    auto r = RunCommand(argv);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    for (int i = 0; i < 12; ++i) {
      const int index = f.first_index + i;
      auto expected = ReadPngFile(ref + "/" + std::to_string(f.first_index) + "/" + std::to_string(i) + "_" +
                                  std::to_string(f.seed + i) + ".png");
      auto got = ReadPngFile(cluster.output() + "/" + job_id + "/" + std::to_string(index) + "_" +
                             std::to_string(f.seed + i) + ".png");
      ASSERT_TRUE(expected.ok() && got.ok()) << index;
      ASSERT_EQ(expected->pixels.size(), got->pixels.size());
      int worst = 0;
      for (size_t p = 0; p < got->pixels.size(); ++p) worst = std::max(worst, std::abs(got->pixels[p] - expected->pixels[p]));
      EXPECT_LE(worst, 1) << "item " << index;
    }
  }

  // Status JSON, workers, metrics and stats.
  auto status = cluster.Client({"status", job_id, "--json"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  auto sj = nlohmann::json::parse(status.out);
  EXPECT_EQ(sj["job"]["state"], "JOB_DONE");
  EXPECT_EQ(sj["job"]["counts"]["done"], 24);
  v1::ListWorkersResponse worker_list;
  const std::string workers_text = cluster.Client({"workers", "--json"}).out;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(workers_text, &worker_list).ok()) << workers_text;
  ASSERT_EQ(worker_list.workers_size(), 2);
  EXPECT_GT(worker_list.workers(0).budget_bytes(), 0u);
  const std::string metrics = cluster.HttpGet("/metrics");
  EXPECT_NE(metrics.find("spriteforge_images_total 24"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("spriteforge_batch_size_bucket"), std::string::npos);
  EXPECT_NE(metrics.find("spriteforge_worker_memory_budget_bytes{worker=\"w1\"}"), std::string::npos);
  EXPECT_NE(metrics.find("spriteforge_queue_depth 0"), std::string::npos);
  EXPECT_NE(metrics.find("spriteforge_build_info{version="), std::string::npos);
  EXPECT_NE(metrics.find("process_resident_memory_bytes "), std::string::npos);
  // Prometheus' own linter accepts the live page of a coordinator whose workers did work.
  Write(cluster.dir(), "metrics.txt", metrics);
  auto lint = RunCommand({"/bin/bash", "-c", "promtool check metrics < " + cluster.dir() + "/metrics.txt"});
  EXPECT_EQ(lint.exit_code, 0) << lint.out << lint.err;
  EXPECT_EQ(lint.out + lint.err, "");
  // /stats is GetStats' message in its JSON mapping; both say the same.
  v1::GetStatsResponse http_stats;
  const std::string stats_text = cluster.HttpGet("/stats");
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(stats_text, &http_stats).ok()) << stats_text;
  EXPECT_EQ(http_stats.images_total(), 24);
  EXPECT_EQ(http_stats.running_items(), 0);
  EXPECT_EQ(http_stats.workers_connected(), 2);
  ASSERT_EQ(http_stats.workers_size(), 2);
  EXPECT_EQ(http_stats.workers(0).images_done() + http_stats.workers(1).images_done(), 24);
  EXPECT_GT(http_stats.workers(0).memory_budget_bytes(), 0u);

  // results: the client downloads the job's files.
  auto results = cluster.Client({"results", job_id, "--out", cluster.dir() + "/downloaded"});
  ASSERT_EQ(results.exit_code, 0) << results.err;
  EXPECT_EQ(ResultPngs(cluster.dir() + "/downloaded").size(), 24u);
}

TEST(ServiceTest, ItemsOfAKilledWorkerFinishElsewhereAndNoneTwice) {
  REQUIRE_GOLDEN();
  Cluster cluster(TempDir("killworker"));
  cluster.StartCoordinator();
  cluster.StartWorker("w1", {"--max-batch", "4"});
  cluster.StartWorker("w2", {"--max-batch", "4"});
  const std::string job_id = SubmitOk(cluster, Write(cluster.dir(), "slow.yaml", SlowManifest(16, 12)));
  // Kill w1 while it holds a batch.
  ASSERT_TRUE(WaitForWorkerHolding(cluster, "w1", 1));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // mid-batch
  cluster.KillWorker("w1");
  auto job = cluster.WaitFor(job_id, [](const v1::Job& j) { return j.state() == v1::JOB_DONE; });
  ExpectCompleteOnce(cluster, job_id, 16);
  EXPECT_GT(ItemsRunAgainOn(cluster, job_id, "w2"), 0) << "the killed worker's batch should have run again";
}

TEST(ServiceTest, AWorkerKilledWithOneBatchRunningAndOneQueuedAheadLosesAndDuplicatesNothing) {
  REQUIRE_GOLDEN();
  Cluster cluster(TempDir("killprefetch"));
  cluster.StartCoordinator();
  cluster.StartWorker("w1", {"--max-batch", "2", "--prefetch", "1"});
  const std::string job_id = SubmitOk(cluster, Write(cluster.dir(), "slow.yaml", SlowManifest(12, 12)));
  // Kill w1 once it holds two batches: one rendering, one queued ahead of it.
  ASSERT_TRUE(WaitForWorkerHolding(cluster, "w1", 4)) << "w1 never held a batch queued ahead";
  cluster.KillWorker("w1");
  cluster.StartWorker("w2", {"--max-batch", "2"});
  cluster.WaitFor(job_id, [](const v1::Job& j) { return j.state() == v1::JOB_DONE; });
  ExpectCompleteOnce(cluster, job_id, 12);
  EXPECT_GE(ItemsRunAgainOn(cluster, job_id, "w2"), 4) << "both batches w1 held should have run again on w2";
}

// A process that dies of a fatal signal says so in its log, with the stack it died on,
// and still dies of that signal (exit status, core dump) as it would without the report.
TEST(ServiceTest, ACrashedWorkerAndCoordinatorLeaveTheSignalAndAStackTraceInTheirLogs) {
  REQUIRE_GOLDEN();
  Cluster cluster(TempDir("crashreport"));
  cluster.StartCoordinator();
  cluster.StartWorker("w1");
  ASSERT_TRUE(WaitForText(cluster.coordinator_log(), "worker w1 registered", 60)) << Slurp(cluster.coordinator_log());
  Process* worker = cluster.worker("w1");
  worker->Kill(SIGSEGV);
  EXPECT_EQ(worker->Wait(), 128 + SIGSEGV);
  const std::string worker_log = Slurp(cluster.dir() + "/worker-w1.log");
  EXPECT_NE(worker_log.find("*** SIGSEGV received"), std::string::npos) << worker_log;
  EXPECT_NE(worker_log.find("PC: @"), std::string::npos) << worker_log;  // where it stopped, then its callers

  kill(cluster.coordinator_pid(), SIGABRT);
  ASSERT_TRUE(WaitForText(cluster.coordinator_log(), "*** SIGABRT received", 30)) << Slurp(cluster.coordinator_log());
}

TEST(ServiceTest, AKilledCoordinatorRestartsFromItsDatabaseAndTheJobCompletes) {
  REQUIRE_GOLDEN();
  Cluster cluster(TempDir("killcoordinator"));
  const int port = FreePort();
  cluster.StartCoordinator(port);
  cluster.StartWorker("w1", {"--max-batch", "4"});
  cluster.StartWorker("w2", {"--max-batch", "4"});
  const std::string job_id = SubmitOk(cluster, Write(cluster.dir(), "slow.yaml", SlowManifest(16, 8)));
  auto before = cluster.WaitFor(job_id, [](const v1::Job& j) { return j.counts().done() >= 4; });
  ASSERT_GE(before.counts().done(), 4);
  ASSERT_LT(before.counts().done(), 16) << "the job finished before the coordinator could be killed";
  cluster.KillCoordinator();
  cluster.StartCoordinator(port);  // same database, output and port; workers reconnect
  auto job = cluster.WaitFor(job_id, [](const v1::Job& j) { return j.state() == v1::JOB_DONE; });
  EXPECT_EQ(job.state(), v1::JOB_DONE) << "see " << cluster.dir();
  ExpectCompleteOnce(cluster, job_id, 16);
}

// A single-file checkpoint with nothing beside it, as downloaded: no --tokenizer, no
// tokenizer/ folder. The worker encodes prompts with the CLIP vocabulary shipped with the
// engine, so its images equal spriteforge-generate's with the golden model's tokenizer.
TEST(ServiceTest, ASingleFileCheckpointWorksWithoutATokenizerFolder) {
  REQUIRE_GOLDEN();
  Cluster cluster(TempDir("shippedtokenizer"));
  const std::string g = GoldenModel();
  const std::string alone = cluster.dir() + "/models/sdxl.safetensors";
  std::filesystem::create_directories(cluster.dir() + "/models");
  std::filesystem::create_symlink(g + "/tiny-sdxl.safetensors", alone);
  cluster.StartCoordinator();
  cluster.StartWorkerOf("w1", {"--model", alone, "--config", g + "/diffusers"});
  const std::string job_id = SubmitOk(cluster, Write(cluster.dir(), "two.yaml", SlowManifest(2, 3)));
  auto job = cluster.WaitFor(job_id, [](const v1::Job& j) { return j.state() == v1::JOB_DONE; });
  ASSERT_EQ(job.state(), v1::JOB_DONE) << Slurp(cluster.dir() + "/worker-w1.log");
  EXPECT_TRUE(WaitForText(cluster.dir() + "/worker-w1.log", "using the CLIP vocabulary in", 1));
  auto r = RunCommand({SPRITEFORGE_GENERATE_BIN, "--model", g + "/tiny-sdxl.safetensors", "--config",
                       g + "/diffusers", "--tokenizer", g + "/tokenizer", "--width", "128", "--height", "128",
                       "--steps", "3", "--cfg", "5", "--sampler", "euler", "--prompt", "blue mana potion", "--seed",
                       "1000", "--out", cluster.dir() + "/reference"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto expected = ReadPngFile(cluster.dir() + "/reference/0_1000.png");
  auto got = ReadPngFile(cluster.output() + "/" + job_id + "/0_1000.png");
  ASSERT_TRUE(expected.ok() && got.ok());
  ASSERT_EQ(expected->pixels.size(), got->pixels.size());
  int worst = 0;
  for (size_t p = 0; p < got->pixels.size(); ++p) worst = std::max(worst, std::abs(got->pixels[p] - expected->pixels[p]));
  EXPECT_LE(worst, 1);
}

TEST(ServiceTest, TheWorkerAndTheGenerateCommandAnswerHelpAndVersion) {
  for (const char* bin : {SPRITEFORGE_WORKER_BIN, SPRITEFORGE_GENERATE_BIN}) {
    auto help = RunCommand({bin, "--help"});
    EXPECT_EQ(help.exit_code, 0) << bin;
    EXPECT_NE(help.out.find("--model TEXT REQUIRED"), std::string::npos) << help.out;
    auto version = RunCommand({bin, "--version"});
    EXPECT_EQ(version.exit_code, 0) << bin;
    EXPECT_NE(version.out.find(" 0.1.0"), std::string::npos) << version.out;
  }
  auto worker = RunCommand({SPRITEFORGE_WORKER_BIN, "--help"}).out;
  for (const char* part : {"--max-batch INT:INT in [1 - 64]=8", "Env:SPRITEFORGE_COORDINATOR", "--log-level"}) {
    EXPECT_NE(worker.find(part), std::string::npos) << part << "\n" << worker;
  }
}

// A --model that is not a checkpoint of the configured architecture stops both programs at
// once with the file and the reason, before a full-size model is allocated.
TEST(ServiceTest, AModelThatIsNotACheckpointStopsTheWorkerAndGenerateWithTheReason) {
  REQUIRE_GOLDEN();
  const std::string dir = TempDir("notamodel");
  std::filesystem::create_directories(dir);
  const std::string text = Write(dir, "prompts.txt", "a knight\na potion\n");
  const std::string tiny_without_config = GoldenModel() + "/tiny-sdxl.safetensors";
  const std::pair<std::string, std::string> cases[] = {
      {text, "not a safetensors file"},
      {tiny_without_config, "the config expects [320, 4, 3, 3] (is --config right?)"}};
  for (const auto& [model, reason] : cases) {
    for (const char* bin : {SPRITEFORGE_WORKER_BIN, SPRITEFORGE_GENERATE_BIN}) {
      const auto start = std::chrono::steady_clock::now();
      std::vector<std::string> argv = {bin, "--model", model, "--device", "cpu"};
      if (std::string(bin) == SPRITEFORGE_WORKER_BIN) {
        argv.insert(argv.end(), {"--coordinator", "127.0.0.1:1"});
      } else {
        argv.insert(argv.end(), {"--prompt", "x", "--out", dir + "/out"});
      }
      auto r = RunCommand(argv);
      EXPECT_NE(r.exit_code, 0) << bin;
      EXPECT_NE(r.err.find(model), std::string::npos) << bin << ": " << r.err;
      EXPECT_NE(r.err.find(reason), std::string::npos) << bin << ": " << r.err;
      EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10)) << bin;
    }
  }
}

TEST(ServiceTest, MalformedManifestsAreRejectedWithFileLineAndFieldAndQueueNothing) {
  Cluster cluster(TempDir("malformed"));
  cluster.StartCoordinator();
  struct Case { const char* name; std::string text; std::string message; };
  const std::string head = "name: bad\nmodel: tiny-sdxl\n";
  const Case cases[] = {
      {"width.yaml", head + "defaults: {width: 100}\nitems: [{prompt: a}]\n",
       "width.yaml:3: defaults.width: must be a multiple of 8 in 64..2048"},
      {"field.yaml", head + "items: [{prompt: a, colour: red}]\n", "field.yaml:3: items[0].colour: unknown field"},
      {"syntax.yaml", head + "items: [{prompt: a}\n", "syntax.yaml:"},
      {"count.yaml", head + "items:\n  - {prompt: a, count: 0}\n", "count.yaml:4: items[0].count: must be 1..10000"},
  };
  for (const Case& c : cases) {
    auto r = cluster.Client({"submit", Write(cluster.dir(), c.name, c.text)});
    EXPECT_EQ(r.exit_code, 1) << c.name;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line: " << r.err;
  }
  auto missing = cluster.Client({"submit", cluster.dir() + "/nope.yaml"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("nope.yaml"), std::string::npos) << missing.err;
  auto list = nlohmann::json::parse(cluster.Client({"status", "--json"}).out);
  EXPECT_TRUE(list["jobs"].empty()) << list.dump();
  auto unknown = cluster.Client({"status", "job-missing"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("no job job-missing"), std::string::npos) << unknown.err;
}

TEST(ServiceTest, CancelStopsQueuedAndRunningWorkAndTheWorkerServesTheNextJob) {
  REQUIRE_GOLDEN();
  Cluster cluster(TempDir("cancel"));
  cluster.StartCoordinator();
  cluster.StartWorker("w1", {"--max-batch", "2"});
  const std::string job_id = SubmitOk(cluster, Write(cluster.dir(), "long.yaml", SlowManifest(40, 8)));
  cluster.WaitFor(job_id, [](const v1::Job& j) { return j.counts().done() >= 2 && j.counts().running() > 0; });
  // status says the job runs and what runs where.
  std::string status;
  for (int i = 0; i < 50 && status.find("running on w1: items ") == std::string::npos; ++i) {
    status = cluster.Client({"status", job_id}).out;
  }
  EXPECT_NE(status.find(job_id + "   running "), std::string::npos) << status;
  EXPECT_NE(status.find("running on w1: items "), std::string::npos) << status;
  auto r = cluster.Client({"cancel", job_id});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto job = cluster.Job(job_id).job();
  EXPECT_EQ(job.state(), v1::JOB_CANCELLED);
  EXPECT_EQ(job.counts().queued() + job.counts().running(), 0);
  EXPECT_GT(job.counts().cancelled(), 0);
  const int done = job.counts().done();
  // The running batch stops between steps; nothing more completes for this job.
  std::this_thread::sleep_for(std::chrono::seconds(2));
  EXPECT_EQ(cluster.Job(job_id).job().counts().done(), done);
  // The worker is free again.
  auto next = cluster.Client({"submit", Write(cluster.dir(), "next.yaml", SlowManifest(2, 2)), "--wait", "--quiet"});
  EXPECT_EQ(next.exit_code, 0) << next.err;
}

TEST(ServiceTest, APostprocessSectionMakesSpritesOnTheWorkerAndKeepsTheRenders) {
  REQUIRE_GOLDEN();
  Cluster cluster(TempDir("postprocess"));
  cluster.StartCoordinator();
  cluster.StartWorker("w1");
  const std::string job_id = SubmitOk(
      cluster, Write(cluster.dir(), "sprites.yaml",
                     SlowManifest(2, 2) + "postprocess: {pixelate: 32x32, palette: gameboy, background: flood}\n"));
  auto job = cluster.WaitFor(job_id, [](const v1::Job& j) { return j.state() == v1::JOB_DONE; });
  ASSERT_EQ(job.state(), v1::JOB_DONE);
  const std::string dir = cluster.output() + "/" + job_id;
  for (int i = 0; i < 2; ++i) {
    const std::string stem = dir + "/" + std::to_string(i) + "_" + std::to_string(1000 + i);
    auto render = ReadPngFile(stem + ".png");
    PngText text;
    auto sprite = ReadPngFile(stem + ".sprite.png", &text);
    ASSERT_TRUE(render.ok() && sprite.ok()) << stem;
    EXPECT_EQ(render->width, 128);
    EXPECT_EQ(sprite->width, 32);
    EXPECT_EQ(sprite->channels, 4);
    ASSERT_FALSE(text.empty());
    EXPECT_NE(text[0].second.find("blue mana potion"), std::string::npos);
  }
  auto files = cluster.Client({"results", job_id, "--out", cluster.dir() + "/got"});
  EXPECT_EQ(files.exit_code, 0) << files.err;
  EXPECT_TRUE(std::filesystem::exists(cluster.dir() + "/got/0_1000.sprite.png"));
}

}  // namespace
}  // namespace spriteforge::testing
