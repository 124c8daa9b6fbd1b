// The coordinator's /metrics text: what Prometheus' own linter (`promtool check metrics`)
// accepts, exact values, build and process metrics.
#include "coordinator/core/metrics.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <string>

#include <gtest/gtest.h>

#include "coordinator/core/process_metrics.h"

namespace spriteforge::coordinator {
namespace {

GaugeSnapshot Busy() {
  GaugeSnapshot g;
  g.queue_depth = 3;
  g.running_items = 2;
  g.jobs_active = 1;
  WorkerGauges w;
  w.id = "spark-1";
  w.connected = true;
  w.images_per_second = 1.5;
  w.peak_bytes = 22536000000;  // needs more than 6 significant digits
  w.budget_bytes = 119ull << 30;
  w.used_bytes = 1234567891;
  w.machine_used_bytes = 98765432109;
  w.images_done = 24;
  g.workers.push_back(w);
  return g;
}

std::string Filled() {
  static Metrics m;
  static bool once = [] {
    m.AddImages(24);
    m.AddFailure("out_of_memory");
    m.ObserveBatch(4);
    m.ObserveStepSeconds(0.2);
    m.ObserveImageSeconds(1.25);
    m.AddBlobFetch(1 << 20);
    m.ObserveResultStoreSeconds("sync", 0.02);
    m.ObserveResultStoreSeconds("no such phase", 1);
    return true;
  }();
  (void)once;
  return m.Render(Busy());
}

TEST(MetricsTest, PromtoolAcceptsTheText) {
  const std::string text = Filled();
  const std::string path = ::testing::TempDir() + "/metrics.txt";
  std::ofstream(path) << text;
  if (std::system("command -v promtool >/dev/null") != 0) GTEST_SKIP() << "promtool (Debian prometheus) not installed";
  const std::string out = path + ".out";
  const int rc = std::system(("promtool check metrics < " + path + " > " + out + " 2>&1").c_str());
  std::ifstream in(out);
  const std::string complaints((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(rc, 0) << complaints << "\n" << text;
  EXPECT_EQ(complaints, "") << text;
}

TEST(MetricsTest, ValuesKeepEveryDigitAndWorkerCountersAreCounters) {
  const std::string text = Filled();
  EXPECT_NE(text.find("spriteforge_worker_memory_peak_bytes{worker=\"spark-1\"} 22536000000\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("spriteforge_worker_memory_used_bytes{worker=\"spark-1\"} 1234567891\n"), std::string::npos);
  EXPECT_NE(text.find("spriteforge_worker_memory_machine_used_bytes{worker=\"spark-1\"} 98765432109\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("# TYPE spriteforge_worker_images_total counter"), std::string::npos);
  EXPECT_NE(text.find("spriteforge_worker_images_total{worker=\"spark-1\"} 24\n"), std::string::npos);
  EXPECT_NE(text.find("spriteforge_images_total 24\n"), std::string::npos);
  EXPECT_NE(text.find("spriteforge_failures_total{reason=\"out_of_memory\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("spriteforge_blob_fetch_bytes_total 1048576\n"), std::string::npos);
  EXPECT_NE(text.find("spriteforge_queue_depth 3\n"), std::string::npos);
  EXPECT_NE(text.find("spriteforge_batch_size_bucket{le=\"4\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("spriteforge_step_seconds_count 1\n"), std::string::npos);
  // Every phase of storing results has its series from the start; unknown phases add none.
  EXPECT_NE(text.find("spriteforge_result_store_seconds_count{phase=\"sync\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("spriteforge_result_store_seconds_count{phase=\"check\"} 0\n"), std::string::npos);
  EXPECT_EQ(text.find("no such phase"), std::string::npos);
}

// "used" is the worker's own memory and says so; the machine's is its own series.
TEST(MetricsTest, UsedMemoryIsTheWorkersOwnAndTheMachinesHasItsOwnSeries) {
  const std::string text = Filled();
  EXPECT_NE(text.find("# HELP spriteforge_worker_memory_used_bytes The worker's own memory"), std::string::npos)
      << text;
  EXPECT_NE(text.find("# HELP spriteforge_worker_memory_machine_used_bytes Memory in use by every process"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("# TYPE spriteforge_worker_memory_machine_used_bytes gauge"), std::string::npos);
}

TEST(MetricsTest, DisconnectedWorkersKeepSeriesOnlyForTheMostRecentlySeen) {
  GaugeSnapshot g = Busy();
  for (int i = 0; i < 3000; ++i) {
    WorkerGauges w;
    w.id = "made-up-" + std::to_string(i);
    w.last_seen_ms = i;
    g.workers.push_back(w);
  }
  const std::string text = Metrics().Render(g);
  size_t series = 0;
  for (size_t at = 0; (at = text.find("spriteforge_worker_connected{", at)) != std::string::npos; ++at) ++series;
  EXPECT_EQ(series, 1 + kMaxDisconnectedWorkerSeries);
  EXPECT_NE(text.find("spriteforge_worker_connected{worker=\"spark-1\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("{worker=\"made-up-2999\"}"), std::string::npos);
  EXPECT_EQ(text.find("{worker=\"made-up-2983\"}"), std::string::npos);
  EXPECT_NE(text.find("spriteforge_workers_known 3001\n"), std::string::npos);
  EXPECT_LT(text.size(), 32u << 10);
}

TEST(MetricsTest, BuildInfoAndProcessMetrics) {
  const std::string text = Filled();
  EXPECT_TRUE(std::regex_search(text, std::regex("spriteforge_build_info\\{version=\"[0-9]+\\.[0-9]+\\.[0-9]+\"\\} 1\n")))
      << text;
  for (const char* name : {"process_cpu_seconds_total ", "process_resident_memory_bytes ",
                           "process_virtual_memory_bytes ", "process_start_time_seconds ", "process_open_fds ",
                           "process_max_fds "}) {
    EXPECT_TRUE(std::regex_search(text, std::regex(std::string("\n") + name + "[0-9.e+]+\n"))) << name << text;
  }
}

TEST(ProcessMetricsTest, ReadsThisProcessFromProc) {
  auto before = ReadProcessStats();
  ASSERT_TRUE(before.ok()) << before.status();
#ifndef SPRITEFORGE_TEST_EMULATED  // qemu-user makes up /proc/self/stat with an RSS of 0
  EXPECT_GT(before->resident_bytes, 1u << 20);
#endif
  EXPECT_GE(before->virtual_bytes, before->resident_bytes);
  EXPECT_GE(before->cpu_seconds, 0);
  const double now = static_cast<double>(time(nullptr));
  EXPECT_LE(before->start_time_seconds, now + 1);
  EXPECT_GT(before->start_time_seconds, now - 3600);  // this test program started within the hour
  EXPECT_GT(before->max_fds, 0);
  const int fd = open("/dev/null", O_RDONLY);
  ASSERT_GE(fd, 0);
  auto after = ReadProcessStats();
  close(fd);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->open_fds, before->open_fds + 1);
}

}  // namespace
}  // namespace spriteforge::coordinator
