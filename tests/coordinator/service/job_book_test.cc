// The job book over a real SQLite store: a job's snapshot (counts, waiting reason), the
// moment it finishes (job.json, job_done to its watchers, out of the cache), watchers'
// order, and a job whose model nobody serves: told once, failed after the timeout.
// The `served` flag stands in for the worker registry's answer.
#include "coordinator/core/job_book.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <future>
#include <mutex>

#include "coordinator/core/results.h"

namespace spriteforge::coordinator {
namespace {

class JobBookTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("job_book_test_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_ + "/out");
    auto store = Store::Open(dir_ + "/db.sqlite");
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    book_ = std::make_unique<JobBook>(store_.get(), nullptr, &outbox_, dir_ + "/out", /*unserved_timeout_ms=*/1000,
                                      [this](const std::string& model) { return served_ && model == "tiny"; });
  }
  void TearDown() override {
    book_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  // A queued job of `count` items in the store and the book.
  JobRecord Queue(int count, const std::function<void(ItemRecord&)>& also = nullptr) {
    JobRecord job;
    job.id = "job-" + std::to_string(++jobs_);
    job.name = "t";
    job.model = "tiny";
    job.created_ms = 1;
    bool dedup = false;
    auto stored = store_->BeginJob(job, &dedup);
    EXPECT_TRUE(stored.ok()) << stored.status();
    std::vector<ItemRecord> items(count);
    for (int i = 0; i < count; ++i) {
      items[i].index = i;
      items[i].image.set_prompt("potion");
      items[i].sampling.set_width(128);
      items[i].sampling.set_height(128);
      if (also) also(items[i]);
    }
    EXPECT_TRUE(store_->AddItems(job.id, items).ok());
    EXPECT_TRUE(store_->QueueJob(job.id).ok());
    stored->state = JobState::kQueued;
    book_->Add(*stored);
    return *stored;
  }
  // Everything posted so far has reached the sinks.
  void Drain() {
    std::promise<void> done;
    outbox_.Post([&] { done.set_value(); });
    done.get_future().wait();
  }
  std::vector<v1::JobEvent> Events() {
    Drain();
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }
  JobBook::EventSink Sink() {
    return [this](const v1::JobEvent& e) {
      std::lock_guard<std::mutex> lock(mu_);
      events_.push_back(e);
    };
  }

  std::string dir_;
  std::unique_ptr<Store> store_;
  Outbox outbox_;
  bool served_ = true;
  std::unique_ptr<JobBook> book_;
  int jobs_ = 0;
  std::mutex mu_;
  std::vector<v1::JobEvent> events_;
};

TEST_F(JobBookTest, SnapshotCountsItemsAndSaysWhyAnUnservedJobWaits) {
  const JobRecord job = Queue(3);
  v1::Job snapshot = book_->Snapshot(job);
  EXPECT_EQ(snapshot.state(), v1::JOB_QUEUED);
  EXPECT_EQ(snapshot.counts().total(), 3);
  EXPECT_EQ(snapshot.counts().queued(), 3);
  EXPECT_TRUE(snapshot.waiting_reason().empty());
  served_ = false;
  snapshot = book_->Snapshot(job);
  EXPECT_EQ(snapshot.waiting_reason(),
            "no connected worker serves model tiny (its queued items fail after 1 s without one)");
}

TEST_F(JobBookTest, ALeasedJobIsShownRunning) {
  const JobRecord job = Queue(2);
  ASSERT_TRUE(store_->Lease("b1", "w1", {{job.id, 0}}, 100000, 10).ok());
  const v1::Job snapshot = book_->Snapshot(*book_->Active(job.id));
  EXPECT_EQ(snapshot.state(), v1::JOB_RUNNING);
  EXPECT_EQ(snapshot.counts().running(), 1);
  EXPECT_EQ(snapshot.counts().queued(), 1);
}

TEST_F(JobBookTest, AJobFinishesOnlyWhenAllItsItemsHave) {
  const JobRecord job = Queue(2);
  ASSERT_TRUE(book_->Watch(job.id, Sink()).ok());
  ASSERT_TRUE(store_->Lease("b1", "w1", {{job.id, 0}, {job.id, 1}}, 100000, 10).ok());
  ASSERT_TRUE(store_->CompleteItem("b1", {job.id, 0}, dir_ + "/out/a.png", "", 20).ok());
  book_->FinishIfComplete({job.id});
  EXPECT_NE(book_->Active(job.id), nullptr);
  ASSERT_TRUE(store_->CompleteItem("b1", {job.id, 1}, dir_ + "/out/b.png", "", 30).ok());
  book_->FinishIfComplete({job.id});
  EXPECT_EQ(book_->Active(job.id), nullptr);
  EXPECT_EQ(book_->active_count(), 0u);
  EXPECT_TRUE(std::filesystem::exists(JobDir(dir_ + "/out", job.id) + "/job.json"));
  const auto events = Events();
  ASSERT_EQ(events.size(), 2u);  // the snapshot, then job_done
  EXPECT_TRUE(events[0].has_queued());
  ASSERT_TRUE(events[1].has_job_done());
  EXPECT_EQ(events[1].job_done().state(), v1::JOB_DONE);
  EXPECT_EQ(events[1].job().counts().done(), 2);
  // A finished job is read from the store, and not cached again.
  auto again = book_->Get(job.id);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->state, JobState::kDone);
  EXPECT_EQ(book_->Active(job.id), nullptr);
}

TEST_F(JobBookTest, WatchersGetEventsInOrderUntilTheyUnwatch) {
  const JobRecord job = Queue(1);
  auto handle = book_->Watch(job.id, Sink());
  ASSERT_TRUE(handle.ok());
  EXPECT_FALSE(book_->Watch("job-missing", Sink()).ok());
  for (int step = 1; step <= 3; ++step) {
    v1::JobEvent event;
    event.mutable_progress()->set_step(step);
    book_->Emit(job.id, event);
  }
  book_->Unwatch(*handle);
  v1::JobEvent late;
  late.mutable_progress()->set_step(4);
  book_->Emit(job.id, late);
  const auto events = Events();
  ASSERT_EQ(events.size(), 4u);
  for (int step = 1; step <= 3; ++step) {
    EXPECT_EQ(events[step].progress().step(), step);
    EXPECT_EQ(events[step].job_id(), job.id);
    EXPECT_EQ(events[step].job().counts().total(), 1);
  }
}

TEST_F(JobBookTest, AnUnservedJobIsToldOnceThenFailsAfterTheTimeout) {
  served_ = false;
  const JobRecord job = Queue(2);
  ASSERT_TRUE(book_->Watch(job.id, Sink()).ok());
  EXPECT_EQ(book_->CheckUnserved(10'000), 0);
  EXPECT_EQ(book_->CheckUnserved(10'500), 0);
  EXPECT_EQ(book_->CheckUnserved(11'000), 2);
  EXPECT_EQ(book_->Active(job.id), nullptr);
  auto stored = store_->GetJob(job.id);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->state, JobState::kFailed);
  int waiting = 0, failed = 0, done = 0;
  for (const v1::JobEvent& e : Events()) {
    waiting += e.has_waiting();
    if (e.has_item_failed()) {
      ++failed;
      EXPECT_EQ(e.item_failed().reason(), v1::FAILURE_MODEL_UNAVAILABLE);
    }
    done += e.has_job_done();
  }
  EXPECT_EQ(waiting, 1);
  EXPECT_EQ(failed, 2);
  EXPECT_EQ(done, 1);
}

TEST_F(JobBookTest, ItemsNeedingAControlNetNoWorkerHasFailAfterTheTimeoutSayingWhich) {
  NamedModels connected;  // what the connected workers serving the model have
  book_ = std::make_unique<JobBook>(store_.get(), nullptr, &outbox_, dir_ + "/out", /*unserved_timeout_ms=*/1000,
                                    [](const std::string&) { return true; },
                                    [&](const BatchKey& key) { return MissingModel(key, connected); });
  auto posed = [](ItemRecord& item) { item.sampling.add_controlnets()->set_name("openpose"); };
  const JobRecord plain = Queue(1);
  const JobRecord job = Queue(2, posed);
  ASSERT_TRUE(book_->Watch(job.id, Sink()).ok());
  EXPECT_EQ(book_->CheckUnserved(10'000), 0);
  connected.controlnets["openpose"] = 1;  // a worker with it comes and goes: the wait starts again
  EXPECT_EQ(book_->CheckUnserved(10'500), 0);
  connected.controlnets.clear();
  EXPECT_EQ(book_->CheckUnserved(11'000), 0);
  EXPECT_EQ(book_->CheckUnserved(12'000), 2);  // the plain job stays queued
  EXPECT_NE(book_->Active(plain.id), nullptr);
  int failed = 0;
  for (const v1::JobEvent& e : Events()) {
    if (e.has_waiting()) EXPECT_EQ(e.waiting().reason(), "no connected worker serves ControlNet 'openpose' with model tiny");
    if (!e.has_item_failed()) continue;
    ++failed;
    EXPECT_EQ(e.item_failed().reason(), v1::FAILURE_MODEL_UNAVAILABLE);
    EXPECT_EQ(e.item_failed().message(), "no connected worker served ControlNet 'openpose' with model tiny for 1 s");
  }
  EXPECT_EQ(failed, 2);
}

TEST_F(JobBookTest, AJobWhoseModelComesBackIsNotFailed) {
  served_ = false;
  const JobRecord job = Queue(1);
  EXPECT_EQ(book_->CheckUnserved(0), 0);
  served_ = true;
  EXPECT_EQ(book_->CheckUnserved(500), 0);
  served_ = false;
  EXPECT_EQ(book_->CheckUnserved(1200), 0);  // its wait started again at 1200
  EXPECT_EQ(book_->CheckUnserved(2200), 1);
}

TEST_F(JobBookTest, ACancelledJobLeavesTheBookAndTheQueues) {
  const JobRecord job = Queue(2);
  auto queued = book_->queues().Jobs();
  ASSERT_TRUE(queued.ok());
  ASSERT_EQ(queued->size(), 1u);
  ASSERT_TRUE(store_->CancelJob(job.id, 50).ok());
  book_->Forget(job.id);
  book_->FinishIfComplete({job.id});
  EXPECT_EQ(book_->Active(job.id), nullptr);
  queued = book_->queues().Jobs();
  ASSERT_TRUE(queued.ok());
  EXPECT_TRUE(queued->empty());
  EXPECT_EQ(store_->GetJob(job.id)->state, JobState::kCancelled);
}

}  // namespace
}  // namespace spriteforge::coordinator
