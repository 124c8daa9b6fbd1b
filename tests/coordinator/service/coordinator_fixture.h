// The coordinator's core without RPC, for tests: a FakeChannel stands in for a worker's
// gRPC stream and records what the core sends; CoordinatorTest owns a core over a fresh
// store and output folder, with helpers to connect workers, submit jobs and answer batches.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <string>

#include "common/png.h"
#include "coordinator/core/coordinator.h"

namespace spriteforge::coordinator::testing {

class FakeChannel : public WorkerChannel {
 public:
  void Send(const v1::CoordinatorMessage& m) override {
    std::lock_guard<std::mutex> lock(mu_);
    messages_.push_back(m);
    cv_.notify_all();
  }
  void Close(const std::string& reason) override {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    close_reason_ = reason;
    cv_.notify_all();
  }
  // The next assignment sent, skipping other messages; fails after `wait`.
  v1::Assignment NextAssignment(std::chrono::milliseconds wait = std::chrono::seconds(5)) {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      if (!cv_.wait_for(lock, wait, [&] { return !messages_.empty(); })) {
        ADD_FAILURE() << "no assignment";
        return {};
      }
      v1::CoordinatorMessage m = messages_.front();
      messages_.pop_front();
      if (m.has_assignment()) return m.assignment();
    }
  }
  // Whether the core closed the stream within `wait` (closing runs on its outbox thread).
  bool WaitClosed(std::chrono::milliseconds wait = std::chrono::seconds(5)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, wait, [&] { return closed_; });
  }
  std::string close_reason() {
    std::lock_guard<std::mutex> lock(mu_);
    return close_reason_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<v1::CoordinatorMessage> messages_;
  bool closed_ = false;
  std::string close_reason_;
};

class CoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(CoordinatorOptions{}); }
  void Start(CoordinatorOptions options) {
    core_.reset();
    dir_ = std::filesystem::temp_directory_path() /
           ("coordinator_test_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    auto store = Store::Open(dir_ + "/db.sqlite");
    ASSERT_TRUE(store.ok());
    options.output_dir = dir_ + "/out";
    auto core = Coordinator::Create(std::move(*store), options);
    ASSERT_TRUE(core.ok()) << core.status();
    core_ = std::move(*core);
  }
  void TearDown() override {
    core_.reset();
    std::filesystem::remove_all(dir_);
  }
  static v1::Register Registration(const std::string& id, int max_batch) {
    v1::Register reg;
    reg.set_worker_id(id);
    reg.add_models("tiny-sdxl");
    reg.set_max_batch(max_batch);
    reg.mutable_memory()->set_budget_bytes(100'000'000'000ull);
    reg.mutable_memory()->set_weights_bytes(1'000'000'000ull);
    return reg;
  }
  std::shared_ptr<FakeChannel> Connect(const std::string& id, int max_batch) {
    auto channel = std::make_shared<FakeChannel>();
    auto status = core_->Register(channel, Registration(id, max_batch));
    EXPECT_TRUE(status.ok()) << status;
    return channel;
  }
  std::string Submit(int count) {
    v1::SubmitJobRequest request;
    request.set_manifest("name: t\nmodel: tiny-sdxl\ndefaults: {width: 128, height: 128, steps: 4}\n"
                         "items: [{prompt: potion, count: " + std::to_string(count) + ", seed: 7}]\n");
    auto response = core_->Submit(request);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? response->job().id() : "";
  }
  // A result for every item of `a`: a PNG of the item's size.
  static v1::WorkerMessage Result(const v1::Assignment& a) {
    v1::WorkerMessage m;
    auto* r = m.mutable_result();
    r->set_batch_id(a.batch_id());
    r->set_total_ms(100);
    r->mutable_memory()->set_peak_allocated_bytes(2'000'000'000ull);
    for (const auto& item : a.items()) {
      const int w = a.sampling().width(), h = a.sampling().height();
      RasterImage image{w, h, 3, std::vector<uint8_t>(static_cast<size_t>(w) * h * 3, 128)};
      auto* ir = r->add_items();
      ir->set_job_id(item.job_id());
      ir->set_index(item.index());
      ir->set_seed(item.params().seed());
      ir->set_png(*EncodePng(image));
    }
    return m;
  }
  v1::GetJobResponse Job(const std::string& job_id) {
    v1::GetJobRequest get;
    get.set_job_id(job_id);
    get.set_include_items(true);
    auto response = core_->GetJob(get);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? *response : v1::GetJobResponse{};
  }
  std::string dir_;
  std::unique_ptr<Coordinator> core_;
};

}  // namespace spriteforge::coordinator::testing
