// The coordinator's core without RPC (see coordinator_fixture.h). Covers dispatch,
// out-of-memory splitting, results on disk, late results and worker loss.
#include <thread>

#include <nlohmann/json.hpp>

#include "common/files.h"
#include "common/sha256.h"
#include "tests/coordinator/service/coordinator_fixture.h"

namespace spriteforge::coordinator {
namespace {

using testing::CoordinatorTest;
using testing::FakeChannel;

// A set whose first image is the others' reference: three poses, items 0 (no IP-Adapter),
// 1 and 2 (the IP-Adapter on item 0's result).
class SetReferenceTest : public CoordinatorTest {
 protected:
  std::shared_ptr<FakeChannel> ConnectWithAdapter(const std::string& id) {
    v1::Register reg = Registration(id, 8);
    reg.add_controlnet_files()->set_name("openpose");
    reg.add_ip_adapter_files()->set_name("plus");
    reg.add_image_encoder_files()->set_name("image_encoder");
    auto channel = std::make_shared<FakeChannel>();
    auto status = core_->Register(channel, reg);
    EXPECT_TRUE(status.ok()) << status;
    return channel;
  }
  std::string SubmitSet() {
    v1::SubmitJobRequest request;
    request.set_manifest(
        "name: sheet\nmodel: tiny-sdxl\ndefaults: {width: 128, height: 128, steps: 4}\n"
        "items: [{prompt: knight, name: hero, seed: 7, set: {poses: [walk_s_0, walk_w_0, walk_n_0], model: openpose,"
        " reference: {first: true, adapter: plus}}}]\n");
    auto response = core_->Submit(request);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? response->job().id() : "";
  }
  // Only the first image goes out; the others wait for its result.
  v1::Assignment FirstOnly(FakeChannel& w, const std::string& job) {
    v1::Assignment first = w.NextAssignment();
    EXPECT_EQ(first.items_size(), 1);
    EXPECT_EQ(first.items(0).index(), 0);
    EXPECT_FALSE(first.sampling().has_ip_adapter());
    const v1::GetJobResponse state = Job(job);
    EXPECT_EQ(state.items(1).state(), v1::ITEM_QUEUED);
    EXPECT_EQ(state.items(2).state(), v1::ITEM_QUEUED);
    return first;
  }
  // The others, with the first's result PNG as their reference, served as a blob.
  void ExpectReferencesToFirst(const v1::Assignment& rest, const std::string& job) {
    ASSERT_EQ(rest.items_size(), 2);
    EXPECT_EQ(rest.sampling().ip_adapter().name(), "plus");
    auto sha = Sha256OfFile(Job(job).items(0).image_path());
    ASSERT_TRUE(sha.ok()) << sha.status();
    for (const auto& item : rest.items()) {
      EXPECT_EQ(item.params().reference_from_index(), 0);
      ASSERT_EQ(item.params().reference_sha256_size(), 1);
      EXPECT_EQ(item.params().reference_sha256(0), *sha);
    }
    auto blob = core_->blobs()->Path(*sha);
    ASSERT_TRUE(blob.ok()) << blob.status();
    EXPECT_EQ(Sha256OfFile(*blob).value_or(""), *sha);
  }
};

TEST_F(SetReferenceTest, LaterImagesWaitForTheFirstAndTakeItsPngAsTheirReference) {
  auto w = ConnectWithAdapter("w1");
  const std::string job = SubmitSet();
  const v1::Assignment first = FirstOnly(*w, job);
  core_->OnMessage(w.get(), Result(first));
  const v1::Assignment rest = w->NextAssignment();
  ExpectReferencesToFirst(rest, job);
  core_->OnMessage(w.get(), Result(rest));
  EXPECT_EQ(Job(job).job().state(), v1::JOB_DONE);
  // The sidecar names the reference the image was made with.
  auto sidecar = ReadFile(dir_ + "/out/" + job + "/2_7.json");
  ASSERT_TRUE(sidecar.ok()) << sidecar.status();
  EXPECT_EQ(nlohmann::json::parse(*sidecar)["parameters"]["ip_adapter"]["reference_sha256"][0],
            rest.items(1).params().reference_sha256(0));
}

TEST_F(SetReferenceTest, WhenTheFirstFailsTheOthersFailSayingWhy) {
  auto w = ConnectWithAdapter("w1");
  const std::string job = SubmitSet();
  const v1::Assignment first = FirstOnly(*w, job);
  v1::WorkerMessage failed;
  failed.mutable_failure()->set_batch_id(first.batch_id());
  failed.mutable_failure()->set_reason(v1::FAILURE_INVALID_REQUEST);
  failed.mutable_failure()->set_message("prompt refused");
  core_->OnMessage(w.get(), failed);
  const v1::GetJobResponse state = Job(job);
  EXPECT_EQ(state.job().state(), v1::JOB_FAILED);
  for (int i = 1; i < 3; ++i) {
    EXPECT_EQ(state.items(i).state(), v1::ITEM_FAILED);
    EXPECT_EQ(state.items(i).failure(), v1::FAILURE_INVALID_REQUEST);
    EXPECT_EQ(state.items(i).failure_message(), "the set's first image (item 0, hero_walk_s_0) failed: prompt refused");
  }
}

TEST_F(SetReferenceTest, ARestartedCoordinatorStillWaitsAndThenFindsTheFirstsResult) {
  auto w = ConnectWithAdapter("w1");
  const std::string job = SubmitSet();
  FirstOnly(*w, job);
  auto restart = [&] {
    core_.reset();
    auto store = Store::Open(dir_ + "/db.sqlite");
    ASSERT_TRUE(store.ok()) << store.status();
    CoordinatorOptions options;
    options.output_dir = dir_ + "/out";
    auto core = Coordinator::Create(std::move(*store), options);
    ASSERT_TRUE(core.ok()) << core.status();
    core_ = std::move(*core);
  };
  restart();  // the first image was running: it is queued again, the others still wait
  auto w2 = ConnectWithAdapter("w2");
  const v1::Assignment first = FirstOnly(*w2, job);
  core_->OnMessage(w2.get(), Result(first));
  w2->NextAssignment();  // the others went out before the restart below, and come back after it
  restart();  // the first is done: the others are sent with its result, read from the store
  auto w3 = ConnectWithAdapter("w3");
  const v1::Assignment rest = w3->NextAssignment();
  ExpectReferencesToFirst(rest, job);
  core_->OnMessage(w3.get(), Result(rest));
  EXPECT_EQ(Job(job).job().state(), v1::JOB_DONE);
}

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

TEST_F(CoordinatorTest, AResultThatIsNotAPngFailsAsInvalidResultAndRetries) {
  auto w = Connect("w1", 1);
  const std::string job = Submit(1);
  v1::Assignment a = w->NextAssignment();
  v1::WorkerMessage bad = Result(a);
  bad.mutable_result()->mutable_items(0)->set_png("not a png");
  core_->OnMessage(w.get(), bad);
  v1::Assignment again = w->NextAssignment();
  EXPECT_EQ(again.items(0).index(), a.items(0).index());
  EXPECT_EQ(Job(job).items(0).failure(), v1::FAILURE_INVALID_RESULT);
}

// A heartbeat's memory as the views show it: "used" the worker's own, the machine's beside
// it, in the workers list, the stats and /metrics alike.
TEST_F(CoordinatorTest, WorkerViewsShowTheWorkersOwnMemoryAndTheMachinesApart) {
  auto w = Connect("spark", 1);
  v1::WorkerMessage beat;
  v1::MemoryReport& m = *beat.mutable_heartbeat()->mutable_memory();
  m.set_total_bytes(128'000'000'000ull);
  m.set_free_bytes(40'000'000'000ull);
  m.set_budget_bytes(30'000'000'000ull);
  m.set_process_bytes(30'000'000'000ull);
  m.set_resident_bytes(20'000'000'000ull);
  core_->OnMessage(w.get(), beat);
  const v1::ListWorkersResponse listed = core_->ListWorkers();
  ASSERT_EQ(listed.workers_size(), 1);
  EXPECT_EQ(listed.workers(0).used_bytes(), 30'000'000'000ull);
  EXPECT_EQ(listed.workers(0).machine_used_bytes(), 88'000'000'000ull);
  EXPECT_EQ(listed.workers(0).resident_bytes(), 20'000'000'000ull);
  const v1::GetStatsResponse stats = core_->Stats();
  ASSERT_EQ(stats.workers_size(), 1);
  EXPECT_EQ(stats.workers(0).memory_used_bytes(), 30'000'000'000ull);
  EXPECT_EQ(stats.workers(0).memory_machine_used_bytes(), 88'000'000'000ull);
  const std::string text = core_->MetricsText();
  EXPECT_NE(text.find("spriteforge_worker_memory_used_bytes{worker=\"spark\"} 30000000000\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("spriteforge_worker_memory_machine_used_bytes{worker=\"spark\"} 88000000000\n"),
            std::string::npos)
      << text;
}

TEST_F(CoordinatorTest, AWorkerDisconnectedLongerThanTheRetentionIsForgottenHereAndInTheStore) {
  CoordinatorOptions options;
  options.worker_retention_ms = 1;
  Start(options);
  auto gone = Connect("gone", 1);
  auto stays = Connect("stays", 1);
  core_->OnDisconnect(gone.get());
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  core_->Tick();
  const v1::ListWorkersResponse listed = core_->ListWorkers();
  ASSERT_EQ(listed.workers_size(), 1);
  EXPECT_EQ(listed.workers(0).id(), "stays");
  auto store = Store::Open(dir_ + "/db.sqlite");
  ASSERT_TRUE(store.ok()) << store.status();
  auto rows = (*store)->ListWorkers();
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].id, "stays");
}

}  // namespace
}  // namespace spriteforge::coordinator
