// The service under random faults until every job is done: several jobs at mixed
// priorities, workers killed with SIGKILL and restarted, the coordinator killed with
// SIGKILL and restarted on the same port, a worker stopped (SIGSTOP) for longer than its
// lease and resumed, a result folder that fills up (a small tmpfs, tests/soak/small_disk.h)
// and then frees space, and a client `watch` that rides through the restarts. At the end every
// image exists exactly once on disk and in the database, nothing is left running, and the
// database passes PRAGMA integrity_check.
//
// SPRITEFORGE_SOAK_IMAGES (default 200) and SPRITEFORGE_SOAK_SEED (default: random) scale
// and replay a run; the figures go to stdout and, with SPRITEFORGE_SOAK_REPORT=FILE, to a
// JSON file (docs/reliability.md).
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/soak/small_disk.h"
#include "tests/system/cluster.h"

namespace spriteforge::testing {
namespace {

using Clock = std::chrono::steady_clock;

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

double Seconds(Clock::time_point since) { return std::chrono::duration<double>(Clock::now() - since).count(); }

// Resident memory of a process in MB, 0 when it is gone.
double RssMb(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atof(line.c_str() + 6) / 1024.0;
  }
  return 0;
}

std::string QueryOne(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* stmt = nullptr;
  std::string out = "(error)";
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW) {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    out = text ? text : "";
  }
  sqlite3_finalize(stmt);
  return out;
}

struct Faults {
  int worker_kills = 0, coordinator_restarts = 0, stalls = 0;
};

// Lines of every coordinator log in `dir` (one per start) that contain `text`.
int CountInCoordinatorLogs(const std::string& dir, const std::string& text) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().filename().string().rfind("coordinator.", 0) != 0) continue;
    const std::string log = Slurp(e.path().string());
    for (size_t at = log.find(text); at != std::string::npos; at = log.find(text, at + 1)) ++n;
  }
  return n;
}

// The full-disk phase: filled once a fifth of the images are done, freed once results
// have failed to be written for a while. The coordinator must answer throughout.
struct DiskFull {
  enum { kBefore, kFull, kFreed, kSkipped } phase = kBefore;
  Clock::time_point full_at, freed_at;
  int done_when_full = 0, done_when_freed = 0;
  uint64_t filler_bytes = 0;
  int calls_answered = 0, calls_refused = 0;  // status and /healthz while full
  double seconds_full = 0, seconds_to_first_image_after = -1;
};

TEST(SoakTest, EveryImageExactlyOnceThroughKillsRestartsAndStalls) {
  if (GoldenModel().empty()) {
    if (std::getenv("SPRITEFORGE_REQUIRE_GOLDEN")) FAIL() << "golden folder missing";
    GTEST_SKIP() << "golden folder missing: set SPRITEFORGE_GOLDEN";
  }
  const int total = std::max(EnvInt("SPRITEFORGE_SOAK_IMAGES", 200), 20);
  const unsigned seed = static_cast<unsigned>(EnvInt("SPRITEFORGE_SOAK_SEED", static_cast<int>(std::random_device{}() % 100000)));
  std::mt19937 rng(seed);
  std::printf("soak: %d images, seed %u (SPRITEFORGE_SOAK_SEED replays the faults' order)\n", total, seed);
  const std::string dir = TempDir("soak");
  // The result folder on a 64 MB tmpfs (the images take a few MB), before any thread starts.
  std::filesystem::create_directories(dir + "/out");
  SmallDisk disk;
  DiskFull full;
  if (disk.Mount(dir + "/out", 64ull << 20)) {
    std::printf("soak: result folder on a 64 MB %s; it fills up and frees space mid-run\n", disk.how().c_str());
  } else {
    full.phase = DiskFull::kSkipped;
    std::printf("soak: FALLBACK, no full-disk phase: a small tmpfs cannot be mounted here (%s)\n", disk.why().c_str());
    if (std::getenv("SPRITEFORGE_SOAK_REQUIRE_FULL_DISK")) FAIL() << "full-disk phase required: " << disk.why();
  }
  Cluster cluster(dir);
  const int port = FreePort();
  cluster.StartCoordinator(port);
  const std::vector<std::string> workers = {"w1", "w2", "w3"};
  for (const std::string& w : workers) cluster.StartWorker(w, {"--max-batch", "4"});

  // Four jobs at three priorities; sizes split `total`.
  const std::vector<std::pair<int, int>> shape = {{total * 3 / 10, 0}, {total / 4, 5}, {total / 4, 0}, {0, -3}};
  std::map<std::string, int> jobs;  // id -> images
  int assigned = 0;
  for (size_t j = 0; j < shape.size(); ++j) {
    const int count = j + 1 == shape.size() ? total - assigned : shape[j].first;
    assigned += count;
    const std::string manifest = dir + "/job" + std::to_string(j) + ".yaml";
    std::ofstream(manifest) << "name: soak-" << j << "\nmodel: tiny-sdxl\npriority: " << shape[j].second
                            << "\ndefaults: {width: 64, height: 64, steps: 16}\n"
                            << "items: [{prompt: \"soak sprite " << j << "\", count: " << count << ", seed: "
                            << 1000 * (j + 1) << "}]\n";
    auto r = cluster.Client({"submit", manifest});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    jobs[Trim(r.out)] = count;
  }
  const std::string watched = jobs.begin()->first;
  Process watch({SPRITEFORGE_CLIENT_BIN, "--coordinator", cluster.address(), "watch", watched, "--quiet",
                 "--reconnect-for", "120"},
                dir + "/watch.log");

  const auto start = Clock::now();
  Faults faults;
  std::vector<double> rss;  // coordinator MB, one sample per fault round
  int done_images = 0;
  auto all_done = [&] {
    bool all = true;
    done_images = 0;
    for (const auto& [id, n] : jobs) {
      const v1::Job job = cluster.Job(id).job();
      done_images += job.counts().done();
      all = all && job.state() == v1::JOB_DONE;
    }
    return all;
  };
  std::string stalled;
  Clock::time_point stalled_at;
  int round = 0;
  while (!all_done()) {
    ASSERT_LT(Seconds(start), 600) << "the soak did not finish; see " << dir;
    std::this_thread::sleep_for(std::chrono::milliseconds(1500 + rng() % 1500));
    rss.push_back(RssMb(cluster.coordinator_pid()));
    if (!stalled.empty() && Seconds(stalled_at) > 8) {  // the lease is 5 s
      cluster.worker(stalled)->Kill(SIGCONT);
      stalled.clear();
    }
    // The result folder fills up, the coordinator keeps answering, then space comes back.
    if (full.phase == DiskFull::kBefore && done_images >= total / 5) {
      full.filler_bytes = disk.Fill();
      full.full_at = Clock::now();
      full.done_when_full = done_images;
      full.phase = DiskFull::kFull;
      std::printf("soak: result folder full after %d images (%llu bytes of filler, %llu free)\n", done_images,
                  static_cast<unsigned long long>(full.filler_bytes),
                  static_cast<unsigned long long>(disk.FreeBytes()));
    } else if (full.phase == DiskFull::kFull) {
      const bool status_ok = cluster.Client({"status", watched}).exit_code == 0;
      const bool healthy = cluster.HttpGet("/healthz") == "ok\n";
      (status_ok && healthy ? full.calls_answered : full.calls_refused)++;
      // Freed once writes have failed for 12 s (at 60 s anyway; the end checks that they failed).
      if ((Seconds(full.full_at) > 12 && CountInCoordinatorLogs(dir, "results cannot be written") > 0) ||
          Seconds(full.full_at) > 60) {
        disk.Free();
        full.phase = DiskFull::kFreed;
        full.freed_at = Clock::now();
        full.seconds_full = Seconds(full.full_at);
        full.done_when_freed = done_images;
        std::printf("soak: space freed after %.1f s full; %d images stored meanwhile\n", full.seconds_full,
                    full.done_when_freed - full.done_when_full);
      }
    } else if (full.phase == DiskFull::kFreed && full.seconds_to_first_image_after < 0 &&
               done_images > full.done_when_freed) {
      full.seconds_to_first_image_after = Seconds(full.freed_at);
    }
    // The stall first: its lease must run out before the jobs are done.
    switch (round++ % 3) {
      case 0: {  // a worker freezes past its lease
        if (!stalled.empty()) break;
        stalled = workers[rng() % workers.size()];
        cluster.worker(stalled)->Kill(SIGSTOP);
        stalled_at = Clock::now();
        ++faults.stalls;
        break;
      }
      case 1: {  // a worker dies mid-batch and comes back
        std::string victim = workers[rng() % workers.size()];
        if (victim == stalled) break;
        cluster.KillWorker(victim);
        cluster.StartWorker(victim, {"--max-batch", "4"});
        ++faults.worker_kills;
        break;
      }
      case 2: {  // the coordinator dies and restarts on its port (not during a stall: the
                 // stalled worker's lease must run out in one coordinator)
        if (!stalled.empty()) break;
        cluster.KillCoordinator();
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        cluster.StartCoordinator(port);
        ++faults.coordinator_restarts;
        break;
      }
    }
  }
  if (!stalled.empty()) cluster.worker(stalled)->Kill(SIGCONT);
  if (full.phase == DiskFull::kFull) disk.Free();
  const double elapsed = Seconds(start);

  // The watch followed its job through every restart to the end.
  EXPECT_EQ(watch.WaitFor(60), 0) << Slurp(dir + "/watch.log");

  // Every image once on disk: one PNG and one sidecar per item, nothing else but job.json.
  const std::regex png(R"((\d+)_(\d+)\.png)"), sidecar(R"((\d+)_(\d+)\.json)");
  int leftovers = 0;
  for (const auto& [id, n] : jobs) {
    auto job = cluster.Job(id, true);
    EXPECT_EQ(job.job().state(), v1::JOB_DONE) << id;
    EXPECT_EQ(job.job().counts().done(), n) << id;
    std::set<int> images, sidecars;
    for (const auto& e : std::filesystem::directory_iterator(cluster.output() + "/" + id)) {
      const std::string f = e.path().filename().string();
      std::smatch m;
      if (std::regex_match(f, m, png)) {
        EXPECT_TRUE(images.insert(std::stoi(m[1])).second) << f;
      } else if (std::regex_match(f, m, sidecar)) {
        sidecars.insert(std::stoi(m[1]));
      } else if (f != "job.json") {
        ++leftovers;  // a temporary file a killed coordinator left and its successor missed
        ADD_FAILURE() << "left over: " << id << "/" << f;
      }
    }
    EXPECT_EQ(static_cast<int>(images.size()), n) << id;
    EXPECT_EQ(sidecars, images) << id;
    for (const v1::Item& it : job.items()) {
      EXPECT_EQ(it.state(), v1::ITEM_DONE);
      EXPECT_TRUE(images.count(it.index())) << id << " item " << it.index();
    }
  }

  // The database, after a clean stop: sound, nothing running, one done row per image.
  cluster.KillCoordinator();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2((dir + "/spriteforge.db").c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  EXPECT_EQ(QueryOne(db, "PRAGMA integrity_check"), "ok");
  EXPECT_EQ(QueryOne(db, "SELECT COUNT(*) FROM items WHERE state = 3"), std::to_string(total));
  EXPECT_EQ(QueryOne(db, "SELECT COUNT(*) FROM items WHERE state <> 3"), "0");
  EXPECT_EQ(QueryOne(db, "SELECT COUNT(*) FROM leases"), "0");
  const std::string retried = QueryOne(db, "SELECT COUNT(*) FROM items WHERE attempts > 1");
  sqlite3_close(db);

  // Each stall outlived its lease: the coordinator dropped the frozen worker.
  const int stalls_detected =
      CountInCoordinatorLogs(dir, " lost: no progress") + CountInCoordinatorLogs(dir, " lost: silent");
  EXPECT_GE(stalls_detected, std::min(faults.stalls, 1)) << "no stalled worker was dropped after its lease";

  // The full disk: results failed to be written (and went back to the queue: every image
  // is done above), the coordinator answered every call meanwhile, and work resumed.
  nlohmann::json disk_report = {{"phase", "skipped"}, {"why", disk.why()}};
  if (full.phase != DiskFull::kSkipped) {
    const int write_failures = CountInCoordinatorLogs(dir, "results cannot be written");
    EXPECT_NE(full.phase, DiskFull::kBefore) << "the jobs finished before the result folder was filled";
    EXPECT_GT(write_failures, 0) << "no result failed to be written while the folder was full";
    EXPECT_GT(full.calls_answered, 0);
    EXPECT_EQ(full.calls_refused, 0) << "the coordinator stopped answering while the disk was full";
    EXPECT_GE(full.seconds_to_first_image_after, 0) << "no image was stored after space came back";
    disk_report = {{"how", disk.how()},
                   {"full_after_images", full.done_when_full},
                   {"seconds_full", full.seconds_full},
                   {"images_stored_while_full", full.done_when_freed - full.done_when_full},
                   {"result_write_failures_logged", write_failures},
                   {"calls_answered_while_full", full.calls_answered},
                   {"seconds_to_first_image_after_freeing", full.seconds_to_first_image_after}};
  }

  const double half_max = rss.size() > 4 ? *std::max_element(rss.begin() + rss.size() / 2, rss.end()) : 0;
  const double half_min = rss.size() > 4 ? *std::min_element(rss.begin() + rss.size() / 2, rss.end()) : 0;
  nlohmann::json report = {{"images", total},
                           {"seed", seed},
                           {"seconds", elapsed},
                           {"images_per_second", total / elapsed},
                           {"worker_kills", faults.worker_kills},
                           {"coordinator_restarts", faults.coordinator_restarts},
                           {"worker_stalls_past_lease", faults.stalls},
                           {"stalled_workers_dropped_by_lease", stalls_detected},
                           {"items_run_more_than_once", std::stoi(retried)},
                           {"temporary_files_left", leftovers},
                           {"disk_full", disk_report},
                           {"coordinator_rss_mb_second_half", {{"min", half_min}, {"max", half_max}}}};
  std::printf("soak: %s\n", report.dump().c_str());
  if (const char* out = std::getenv("SPRITEFORGE_SOAK_REPORT")) std::ofstream(out) << report.dump(2) << "\n";
  EXPECT_GE(faults.coordinator_restarts, 1);
  EXPECT_GE(faults.worker_kills, 1);
}

}  // namespace
}  // namespace spriteforge::testing
