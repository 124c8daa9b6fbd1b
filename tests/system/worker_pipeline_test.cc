// The worker keeps its GPU busy: batch N's PNGs are encoded and uploaded while batch N+1
// renders, and the coordinator has the next batch on the worker before the current one
// ends. A real coordinator process; the worker session runs in this process on a stand-in
// engine (FakeGpu: it sleeps for a fixed "render" time and returns flat images) and a
// stand-in encoder that is slow on purpose, so the overlap shows in the timestamps.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "tests/system/cluster.h"
#include "worker/worker_session.h"

namespace spriteforge::testing {
namespace {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point t0, Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(t - t0).count();
}

struct Span {
  double start_ms, end_ms;
};

// Stands in for the engine on a GPU: each batch takes `render_ms`, whatever its size.
class FakeGpu : public engine::Engine {
 public:
  FakeGpu(Clock::time_point t0, int render_ms) : t0_(t0), render_ms_(render_ms) {}

  absl::StatusOr<engine::BatchResult> Generate(const engine::BatchRequest& request,
                                               const engine::ProgressFn& progress,
                                               const engine::PreviewFn&) override {
    const auto start = Clock::now();
    for (int step = 1; step <= request.steps; ++step) {
      std::this_thread::sleep_for(std::chrono::milliseconds(render_ms_ / request.steps));
      if (progress && !progress(step, request.steps)) return absl::CancelledError("cancelled");
    }
    engine::BatchResult out;
    for (const engine::ImageRequest& image : request.images) {
      engine::Image img;
      img.width = request.width;
      img.height = request.height;
      img.rgb.assign(static_cast<size_t>(request.width) * request.height * 3, static_cast<uint8_t>(image.seed));
      out.images.push_back(std::move(img));
    }
    out.timings.total_ms = MsSince(start, Clock::now());
    std::lock_guard<std::mutex> lock(mu_);
    renders_.push_back({MsSince(t0_, start), MsSince(t0_, Clock::now())});
    return out;
  }
  absl::StatusOr<engine::MemoryStats> Calibrate(int, int, int) override { return Memory(); }
  engine::MemoryStats Memory() const override {
    engine::MemoryStats m;
    m.total_bytes = 16ull << 30;
    m.free_bytes = 8ull << 30;
    m.weights_bytes = 1ull << 30;
    return m;
  }
  engine::DeviceInfo Device() const override { return {"fake-gpu", "9.0", false, 16ull << 30}; }

  std::vector<Span> renders() {
    std::lock_guard<std::mutex> lock(mu_);
    return renders_;
  }

 private:
  Clock::time_point t0_;
  int render_ms_;
  std::mutex mu_;
  std::vector<Span> renders_;
};

class SlowEncoder {
 public:
  SlowEncoder(Clock::time_point t0, int ms_per_image) : t0_(t0), ms_(ms_per_image) {}
  worker::ImageEncoder Fn() {
    return [this](const RasterImage& image, const PngText& text) {
      const auto start = Clock::now();
      std::this_thread::sleep_for(std::chrono::milliseconds(ms_));
      auto png = EncodePng(image, text);
      std::lock_guard<std::mutex> lock(mu_);
      encodes_.push_back({MsSince(t0_, start), MsSince(t0_, Clock::now())});
      return png;
    };
  }
  std::vector<Span> encodes() {
    std::lock_guard<std::mutex> lock(mu_);
    return encodes_;
  }

 private:
  Clock::time_point t0_;
  int ms_;
  std::mutex mu_;
  std::vector<Span> encodes_;
};

TEST(WorkerPipelineTest, BatchNIsEncodedAndCommittedWhileBatchNPlusOneRenders) {
  Cluster cluster(TempDir("pipeline"));
  cluster.StartCoordinator();
  const auto t0 = Clock::now();
  FakeGpu gpu(t0, 600);
  SlowEncoder encoder(t0, 150);
  worker::WorkerIdentity identity;
  identity.worker_id = "pipelined";
  identity.model_name = "fake-sdxl";
  identity.max_batch = 2;
  identity.prefetch = 1;
  identity.encode_threads = 1;  // 2 images x 150 ms of encoding per batch, one after the other
  std::atomic<bool> stop{false};
  std::thread session([&] {
    worker::WorkerSession s(&gpu, identity, grpc::CreateChannel(cluster.address(), grpc::InsecureChannelCredentials()),
                            encoder.Fn());
    s.Run(nullptr, stop).IgnoreError();
  });

  const std::string manifest = cluster.dir() + "/job.yaml";
  std::ofstream(manifest) << "name: pipelined\nmodel: fake-sdxl\n"
                             "defaults: {width: 64, height: 64, steps: 6, cfg: 5.0}\n"
                             "items:\n  - {prompt: \"green slime\", count: 10, seed: 40}\n";
  auto submitted = cluster.Client({"submit", manifest});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  std::string job_id = submitted.out.substr(0, submitted.out.find('\n'));
  // Before the first render ends, the coordinator has already put a second batch on the
  // worker (prefetch 1): four items held, two of them queued ahead.
  int most_held = 0;
  for (auto until = Clock::now() + std::chrono::milliseconds(450); Clock::now() < until;) {
    v1::ListWorkersResponse workers;
    grpc::ClientContext ctx;
    cluster.Stub().ListWorkers(&ctx, v1::ListWorkersRequest(), &workers);
    for (const auto& w : workers.workers()) most_held = std::max(most_held, w.running_items());
    if (gpu.renders().size() > 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(most_held, 4) << "no batch was queued ahead on the worker";
  auto job = cluster.WaitFor(job_id, [](const v1::Job& j) { return j.state() == v1::JOB_DONE; }, 60);
  stop = true;
  session.join();

  // Every image once, each committed with its render timestamps in the sidecar.
  ASSERT_EQ(job.counts().done(), 10);
  auto items = cluster.Job(job_id, true);
  for (const v1::Item& it : items.items()) {
    EXPECT_EQ(it.attempts(), 1) << "item " << it.index() << " ran more than once";
    EXPECT_TRUE(std::filesystem::exists(it.image_path()));
  }

  std::vector<Span> renders = gpu.renders();
  std::vector<Span> encodes = encoder.encodes();
  ASSERT_EQ(renders.size(), 5u);
  ASSERT_EQ(encodes.size(), 10u);
  std::sort(encodes.begin(), encodes.end(), [](const Span& a, const Span& b) { return a.start_ms < b.start_ms; });
  for (size_t k = 0; k + 1 < renders.size(); ++k) {
    // The next batch was already on the worker: the "GPU" does not wait for encoding,
    // uploads or a round trip to the coordinator.
    const double gap = renders[k + 1].start_ms - renders[k].end_ms;
    EXPECT_LT(gap, 100) << "GPU idle " << gap << " ms between batch " << k << " and " << k + 1;
    // Batch k's images are encoded while batch k+1 renders.
    const Span& last_encode_of_k = encodes[2 * k + 1];
    EXPECT_GT(last_encode_of_k.end_ms, renders[k + 1].start_ms) << "batch " << k;
    EXPECT_LT(encodes[2 * k].start_ms, renders[k + 1].end_ms) << "batch " << k;
  }
  // Five renders of 600 ms back to back, plus the last batch's encoding: serial work would
  // add 300 ms of encoding and a round trip per batch.
  const double span = renders.back().end_ms - renders.front().start_ms;
  EXPECT_LT(span, 5 * 600 + 4 * 100) << "renders did not run back to back";
}

}  // namespace
}  // namespace spriteforge::testing
