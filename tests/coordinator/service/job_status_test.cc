// What the coordinator tells about a job and about itself, without RPC: the job's state
// while its items run, why it waits, its failure when no worker serves its model, and the
// health check of the service loop (also through the HTTP endpoint); a large job's
// cancellation, which answers other calls while it proceeds.
#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

#include "coordinator/transport/http/http_endpoint.h"
#include "tests/coordinator/service/coordinator_fixture.h"

namespace spriteforge::coordinator {
namespace {

class JobStatusTest : public testing::CoordinatorTest {
 protected:
  std::string SubmitFor(const std::string& model) {
    v1::SubmitJobRequest request;
    request.set_manifest("name: t\nmodel: " + model +
                         "\ndefaults: {width: 128, height: 128, steps: 4}\nitems: [{prompt: potion, count: 2}]\n");
    auto response = core_->Submit(request);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? response->job().id() : "";
  }
  v1::GetJobResponse Get(const std::string& job_id) { return Job(job_id); }
};

TEST_F(JobStatusTest, AJobIsRunningOnceItsItemsAre) {
  const std::string job = SubmitFor("tiny-sdxl");
  EXPECT_EQ(Get(job).job().state(), v1::JOB_QUEUED);
  auto worker = Connect("w1", 4);
  worker->NextAssignment();
  const v1::GetJobResponse running = Get(job);
  EXPECT_EQ(running.job().counts().running(), 2);
  EXPECT_EQ(running.job().state(), v1::JOB_RUNNING);
  for (const v1::Item& it : running.items()) EXPECT_EQ(it.worker_id(), "w1");
}

TEST_F(JobStatusTest, AJobSaysWhenNoConnectedWorkerServesItsModel) {
  auto worker = Connect("w1", 4);
  const std::string job = SubmitFor("other-model");
  EXPECT_EQ(Get(job).job().waiting_reason(), "no connected worker serves model other-model");
  const std::string served = SubmitFor("tiny-sdxl");
  EXPECT_EQ(Get(served).job().waiting_reason(), "");
  // Without a timeout it waits: ticks change nothing.
  for (int i = 0; i < 3; ++i) core_->Tick();
  EXPECT_EQ(Get(job).job().state(), v1::JOB_QUEUED);
  EXPECT_EQ(Get(job).job().counts().queued(), 2);
}

TEST_F(JobStatusTest, AJobWhoseModelStaysUnservedFailsAfterTheTimeout) {
  CoordinatorOptions options;
  options.unserved_model_timeout_ms = 200;
  Start(options);
  const std::string job = SubmitFor("other-model");
  core_->Tick();  // notices
  EXPECT_NE(Get(job).job().waiting_reason().find("fail after 0.2 s"), std::string::npos)
      << Get(job).job().waiting_reason();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  core_->Tick();
  const v1::GetJobResponse failed = Get(job);
  EXPECT_EQ(failed.job().state(), v1::JOB_FAILED);
  EXPECT_EQ(failed.job().counts().failed(), 2);
  for (const v1::Item& it : failed.items()) {
    EXPECT_EQ(it.failure(), v1::FAILURE_MODEL_UNAVAILABLE);
    EXPECT_EQ(it.failure_message(), "no connected worker served model other-model for 0.2 s");
  }
}

TEST_F(JobStatusTest, AWorkerArrivingInTimeStopsTheClock) {
  CoordinatorOptions options;
  options.unserved_model_timeout_ms = 300;
  Start(options);
  const std::string job = SubmitFor("tiny-sdxl");
  core_->Tick();
  auto worker = Connect("w1", 4);
  worker->NextAssignment();
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  core_->Tick();
  EXPECT_EQ(Get(job).job().counts().failed(), 0);
  EXPECT_EQ(Get(job).job().state(), v1::JOB_RUNNING);
}

TEST_F(JobStatusTest, TheHealthCheckFailsWhenTheServiceLoopStops) {
  EXPECT_TRUE(core_->CheckAlive(100, 100).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const absl::Status stale = core_->CheckAlive(100, 100);
  EXPECT_EQ(stale.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(stale.message().find("the service loop last ran"), std::string::npos) << stale;
  core_->Tick();
  EXPECT_TRUE(core_->CheckAlive(100, 100).ok());

  // A wide window, so a slow machine (or an emulator) answers the first request in time.
  auto http = HttpEndpoint::Start(core_.get(), "127.0.0.1", 0, HealthLimits{1500, 100});
  ASSERT_TRUE(http.ok()) << http.status();
  httplib::Client client("127.0.0.1", (*http)->port());
  core_->Tick();
  auto ok = client.Get("/healthz");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(ok->body, "ok\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(1800));
  auto stuck = client.Get("/healthz");
  ASSERT_TRUE(stuck);
  EXPECT_EQ(stuck->status, 503);
  EXPECT_NE(stuck->body.find("the service loop last ran"), std::string::npos) << stuck->body;
}

// Sanitizers slow every call several times over and keep freed memory in quarantine, so
// timings and peak memory are checked only in uninstrumented builds.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

// The most memory this process has held so far, in KiB.
long PeakRssKib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

// Cancelling a large job: it is cancelled at once, then its queued items a chunk per
// transaction with the core's lock released between chunks, so other calls are answered
// while it proceeds; every item ends cancelled exactly once, and job.json is written a
// page of items at a time, so the cancel costs no memory in proportion to the job.
TEST_F(JobStatusTest, CancellingALargeJobKeepsAnsweringOtherCallsInFlatMemory) {
  constexpr int kItems = 20000;
  v1::SubmitJobRequest request;
  const std::string entry = "{prompt: \"" + std::string(900, 'p') + "\", count: " + std::to_string(kItems / 2) + "}";
  request.set_manifest("name: t\nmodel: tiny-sdxl\ndefaults: {width: 128, height: 128, steps: 4}\n"
                       "items: [" + entry + ", " + entry + "]\n");
  auto submitted = core_->Submit(request);
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  const std::string job_id = submitted->job().id();
  const long peak_before = PeakRssKib();

  std::atomic<bool> cancelled{false};
  absl::Status cancel_status;
  const auto start = std::chrono::steady_clock::now();
  std::thread cancel([&] {
    v1::CancelJobRequest cancel_request;
    cancel_request.set_job_id(job_id);
    cancel_status = core_->Cancel(cancel_request).status();
    cancelled = true;
  });
  int answered = 0;
  std::chrono::steady_clock::duration longest{};
  while (!cancelled) {
    const auto asked = std::chrono::steady_clock::now();
    core_->Stats();
    if (cancelled) break;
    longest = std::max(longest, std::chrono::steady_clock::now() - asked);
    ++answered;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  cancel.join();
  const auto took = std::chrono::steady_clock::now() - start;
  const long grown_kib = PeakRssKib() - peak_before;
  ASSERT_TRUE(cancel_status.ok()) << cancel_status;
  using Ms = std::chrono::duration<double, std::milli>;
  const double took_ms = Ms(took).count(), longest_ms = Ms(longest).count();
  if (!kSanitized) {
    // A mutex is not fair: under load the cancel may take the lock back between some
    // chunks, so one answer during the cancel is what is required, and no wait of half of it.
    EXPECT_GE(answered, 1) << "the cancel took " << took_ms << " ms";
    EXPECT_LT(longest_ms, took_ms / 2);
  }

  const v1::GetJobResponse job = Job(job_id);
  EXPECT_EQ(job.job().state(), v1::JOB_CANCELLED);
  EXPECT_EQ(job.job().counts().total(), kItems);
  EXPECT_EQ(job.job().counts().cancelled(), kItems);
  EXPECT_EQ(job.items_size(), kItems);
  EXPECT_TRUE(std::all_of(job.items().begin(), job.items().end(),
                          [](const v1::Item& it) { return it.state() == v1::ITEM_CANCELLED; }));
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/out/" + job_id + "/job.json"));
  // Before the items were read a page at a time, job.json alone took tens of MB here.
  if (!kSanitized) EXPECT_LT(grown_kib, 16 * 1024);
}

}  // namespace
}  // namespace spriteforge::coordinator
