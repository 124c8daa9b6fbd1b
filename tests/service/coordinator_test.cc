// The coordinator's core without RPC: a FakeChannel stands in for a worker's gRPC stream
// and records what the core sends. Covers dispatch, out-of-memory splitting, results on
// disk, late results and worker loss.
#include "service/coordinator.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>

#include "spriteforge/common/png.h"

namespace spriteforge::coordinator {
namespace {

class FakeChannel : public WorkerChannel {
 public:
  void Send(const v1::CoordinatorMessage& m) override {
    std::lock_guard<std::mutex> lock(mu_);
    messages_.push_back(m);
    cv_.notify_all();
  }
  void Close(const std::string&) override { closed_ = true; }
  // The next assignment sent, skipping other messages; fails after 5 s.
  v1::Assignment NextAssignment() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      if (!cv_.wait_for(lock, std::chrono::seconds(5), [&] { return !messages_.empty(); })) {
        ADD_FAILURE() << "no assignment";
        return {};
      }
      v1::CoordinatorMessage m = messages_.front();
      messages_.pop_front();
      if (m.has_assignment()) return m.assignment();
    }
  }
  bool closed_ = false;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<v1::CoordinatorMessage> messages_;
};

class CoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("coordinator_test_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    auto store = Store::Open(dir_ + "/db.sqlite");
    ASSERT_TRUE(store.ok());
    CoordinatorOptions options;
    options.output_dir = dir_ + "/out";
    auto core = Coordinator::Create(std::move(*store), options);
    ASSERT_TRUE(core.ok()) << core.status();
    core_ = std::move(*core);
  }
  void TearDown() override {
    core_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::shared_ptr<FakeChannel> Connect(const std::string& id, int max_batch) {
    auto channel = std::make_shared<FakeChannel>();
    v1::Register reg;
    reg.set_worker_id(id);
    reg.add_models("tiny-sdxl");
    reg.set_max_batch(max_batch);
    reg.mutable_memory()->set_budget_bytes(100'000'000'000ull);
    reg.mutable_memory()->set_weights_bytes(1'000'000'000ull);
    EXPECT_TRUE(core_->Register(channel, reg).ok());
    return channel;
  }
  std::string Submit(int count) {
    v1::SubmitJobRequest request;
    request.set_manifest("name: t\nmodel: tiny-sdxl\ndefaults: {width: 128, height: 128, steps: 4}\n"
                         "items: [{prompt: potion, count: " + std::to_string(count) + ", seed: 7}]\n");
    auto response = core_->Submit(request);
    EXPECT_TRUE(response.ok()) << response.status();
    return response->job().id();
  }
  static v1::WorkerMessage Result(const v1::Assignment& a) {
    v1::WorkerMessage m;
    auto* r = m.mutable_result();
    r->set_batch_id(a.batch_id());
    r->set_total_ms(100);
    r->mutable_memory()->set_peak_allocated_bytes(2'000'000'000ull);
    RasterImage pixel{1, 1, 3, {255, 0, 0}};
    for (const auto& item : a.items()) {
      auto* ir = r->add_items();
      ir->set_job_id(item.job_id());
      ir->set_index(item.index());
      ir->set_seed(item.params().seed());
      ir->set_png(*EncodePng(pixel));
    }
    return m;
  }
  std::string dir_;
  std::unique_ptr<Coordinator> core_;
};

TEST_F(CoordinatorTest, OutOfMemorySplitsTheBatchAndTheRetriesComplete) {
  auto w = Connect("w1", 8);
  const std::string job = Submit(8);
  v1::Assignment first = w->NextAssignment();
  ASSERT_EQ(first.items_size(), 8);
  EXPECT_EQ(first.items(0).params().seed(), 7u);

  v1::WorkerMessage oom;
  oom.mutable_failure()->set_batch_id(first.batch_id());
  oom.mutable_failure()->set_reason(v1::FAILURE_OUT_OF_MEMORY);
  core_->OnMessage(w.get(), oom);
  v1::Assignment half = w->NextAssignment();
  EXPECT_EQ(half.items_size(), 4) << "the cap for 128x128 halves";

  core_->OnMessage(w.get(), Result(half));
  v1::Assignment rest = w->NextAssignment();
  EXPECT_EQ(rest.items_size(), 4);
  core_->OnMessage(w.get(), Result(rest));

  v1::GetJobRequest get;
  get.set_job_id(job);
  get.set_include_items(true);
  auto state = core_->GetJob(get);
  EXPECT_EQ(state->job().state(), v1::JOB_DONE);
  EXPECT_EQ(state->job().counts().done(), 8);
  for (const auto& it : state->items()) {
    EXPECT_TRUE(std::filesystem::exists(it.image_path())) << it.image_path();
    EXPECT_EQ(it.attempts(), 2) << "out of memory does not fail items";
  }
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/out/" + job + "/job.json"));
}

TEST_F(CoordinatorTest, ALostWorkersBatchGoesToTheNextWorkerAndItsLateResultIsIgnored) {
  auto w1 = Connect("w1", 4);
  const std::string job = Submit(4);
  v1::Assignment a1 = w1->NextAssignment();
  ASSERT_EQ(a1.items_size(), 4);
  core_->OnDisconnect(w1.get());
  auto w2 = Connect("w2", 4);
  v1::Assignment a2 = w2->NextAssignment();
  EXPECT_EQ(a2.items_size(), 4);
  core_->OnMessage(w1.get(), Result(a1));  // the dead stream's result: not counted
  v1::GetJobRequest get;
  get.set_job_id(job);
  EXPECT_EQ(core_->GetJob(get)->job().counts().done(), 0);
  core_->OnMessage(w2.get(), Result(a2));
  EXPECT_EQ(core_->GetJob(get)->job().counts().done(), 4);
}

TEST_F(CoordinatorTest, AResultThatIsNotAPngFailsAsStorageAndRetries) {
  auto w = Connect("w1", 1);
  Submit(1);
  v1::Assignment a = w->NextAssignment();
  v1::WorkerMessage bad = Result(a);
  bad.mutable_result()->mutable_items(0)->set_png("not a png");
  core_->OnMessage(w.get(), bad);
  v1::Assignment again = w->NextAssignment();
  EXPECT_EQ(again.items(0).index(), a.items(0).index());
}

}  // namespace
}  // namespace spriteforge::coordinator
