// The worker's own health endpoint (--http): probes on its machine learn whether it is
// ready (model loaded, a coordinator holding it) without asking the coordinator, and a
// scraper reads its own memory and throughput.
#include <httplib.h>

#include <gtest/gtest.h>

#include "worker/health_endpoint.h"

namespace spriteforge::worker {
namespace {

class WorkerHealthEndpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    auto started = HealthEndpoint::Start("127.0.0.1:0", &status_, "spark-2", [] {
      EngineView view;
      view.memory.weights_bytes = 7'000'000'000;
      view.device.name = "NVIDIA GB10";
      view.device.unified_memory = true;
      return view;
    });
    ASSERT_TRUE(started.ok()) << started.status();
    endpoint_ = std::move(*started);
    client_ = std::make_unique<httplib::Client>("127.0.0.1", endpoint_->port());
  }

  // Status and body of GET `path`.
  std::pair<int, std::string> Get(const std::string& path) {
    auto res = client_->Get(path);
    if (!res) return {0, "no answer"};
    return {res->status, res->body};
  }

  WorkerStatus status_;
  std::unique_ptr<HealthEndpoint> endpoint_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(WorkerHealthEndpoint, IsNotReadyWhileTheModelLoads) {
  EXPECT_EQ(Get("/healthz"), std::make_pair(503, std::string("loading the model\n")));
}

TEST_F(WorkerHealthEndpoint, IsNotReadyUntilACoordinatorAcceptsTheWorker) {
  status_.model_loaded = true;
  EXPECT_EQ(Get("/healthz"), std::make_pair(503, std::string("not connected to a coordinator\n")));
}

TEST_F(WorkerHealthEndpoint, IsReadyOnceLoadedAndConnected) {
  status_.model_loaded = true;
  status_.connected = true;
  EXPECT_EQ(Get("/healthz"), std::make_pair(200, std::string("ok\n")));
  status_.connected = false;  // the session ended: reconnecting
  EXPECT_EQ(Get("/healthz").first, 503);
}

TEST_F(WorkerHealthEndpoint, MetricsCarryItsOwnMemoryAndTheImagesItDelivered) {
  v1::BatchResultMsg result;
  result.add_items();
  result.add_items();
  result.add_items();
  CountDelivered(result, &status_);
  CountDelivered(result, &status_);
  status_.model_loaded = true;
  const auto [code, body] = Get("/metrics");
  ASSERT_EQ(code, 200);
  EXPECT_NE(body.find("spriteforge_worker_delivered_images_total{worker=\"spark-2\"} 6\n"), std::string::npos)
      << body;
  EXPECT_NE(body.find("spriteforge_worker_delivered_batches_total{worker=\"spark-2\"} 2\n"), std::string::npos);
  EXPECT_NE(body.find("spriteforge_worker_weights_bytes{worker=\"spark-2\",device=\"NVIDIA GB10\",unified=\"1\"} "
                      "7000000000\n"),
            std::string::npos)
      << body;
  EXPECT_NE(body.find("spriteforge_worker_process_resident_bytes{worker=\"spark-2\"} "), std::string::npos);
  EXPECT_GT(ProcessResidentBytes(), 0u);
}

TEST(WorkerHealthAddress, ABarePortListensOnLoopbackOnly) {
  auto bare = ParseHealthAddress("9100");
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(*bare, std::make_pair(std::string("127.0.0.1"), 9100));
  auto any = ParseHealthAddress("0.0.0.0:9100");
  ASSERT_TRUE(any.ok());
  EXPECT_EQ(any->first, "0.0.0.0");
  EXPECT_FALSE(ParseHealthAddress("healthz").ok());
  EXPECT_FALSE(ParseHealthAddress(":9100").ok());
}

}  // namespace
}  // namespace spriteforge::worker
