// The coordinator's store on a real SQLite file: job creation and idempotency, the item
// life cycle through leases, late results, cancellation and recovery after a restart.
#include "coordinator/store/store.h"

#include <gtest/gtest.h>

#include <sqlite3.h>

#include <filesystem>

namespace spriteforge::coordinator {
namespace {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = std::filesystem::temp_directory_path() /
            ("store_test_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".db");
    std::filesystem::remove(path_);
    Reopen();
  }
  void TearDown() override {
    store_.reset();
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path_.string() + suffix);
  }
  void Reopen() {
    store_.reset();
    auto s = Store::Open(path_.string());
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
  }
  JobRecord MakeJob(const std::string& id, int items, const std::string& key = "") {
    JobRecord job;
    job.id = id;
    job.name = "potions";
    job.model = "tiny-sdxl";
    job.created_ms = 1000;
    job.idempotency_key = key;
    std::vector<ItemRecord> list;
    for (int i = 0; i < items; ++i) {
      ItemRecord it;
      it.index = i;
      it.params.prompt = "red potion";
      it.params.seed = 0xFFFFFFFFFFFFFFF0ull + i;  // above INT64_MAX: stored as a bit pattern
      it.params.width = it.params.height = 128;
      it.params.steps = 4;
      it.params.cfg = 5;
      it.params.sampler = "euler";
      it.params.schedule = "normal";
      it.params.model = "tiny-sdxl";
      list.push_back(it);
    }
    bool dedup = false;
    auto created = store_->CreateJob(job, list, &dedup);
    EXPECT_TRUE(created.ok()) << created.status();
    EXPECT_FALSE(dedup);
    return *created;
  }
  std::filesystem::path path_;
  std::unique_ptr<Store> store_;
};

TEST_F(StoreTest, CreatesJobsAndKeepsTheirItemsInOrder) {
  MakeJob("job-a", 3);
  auto items = store_->Items("job-a");
  ASSERT_TRUE(items.ok());
  ASSERT_EQ(items->size(), 3u);
  EXPECT_EQ((*items)[2].index, 2);
  EXPECT_EQ((*items)[2].params.seed, 0xFFFFFFFFFFFFFFF2ull);
  EXPECT_FALSE((*items)[0].params.negative.has_value());
  auto counts = store_->Counts("job-a");
  EXPECT_EQ(counts->total, 3);
  EXPECT_EQ(counts->queued, 3);
  EXPECT_EQ(store_->GetJob("nope").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(StoreTest, SameIdempotencyKeyReturnsTheFirstJob) {
  MakeJob("job-a", 2, "key-1");
  JobRecord again;
  again.id = "job-b";
  again.name = "potions";
  again.model = "tiny-sdxl";
  again.idempotency_key = "key-1";
  bool dedup = false;
  auto job = store_->CreateJob(again, {}, &dedup);
  ASSERT_TRUE(job.ok());
  EXPECT_TRUE(dedup);
  EXPECT_EQ(job->id, "job-a");
  EXPECT_EQ(store_->ListJobs(10)->size(), 1u);
}

TEST_F(StoreTest, LeaseCompleteAndLateResultsOfAReleasedBatch) {
  MakeJob("job-a", 2);
  ASSERT_TRUE(store_->Lease("b1", "w1", {{"job-a", 0}, {"job-a", 1}}, 5000, 100).ok());
  EXPECT_EQ(store_->GetJob("job-a")->state, JobState::kRunning);
  EXPECT_TRUE(store_->QueuedItems()->empty());
  // Leasing an item twice is refused.
  EXPECT_FALSE(store_->Lease("b2", "w2", {{"job-a", 0}}, 5000, 100).ok());

  EXPECT_TRUE(*store_->CompleteItem("b1", {"job-a", 0}, "/out/0.png", "", 200));
  // The worker dies: item 1 returns to the queue, its attempt recorded.
  auto released = store_->ReleaseBatch("b1", 0, "worker lost", 3);
  ASSERT_EQ(released->size(), 1u);
  EXPECT_EQ((*released)[0].state, ItemState::kQueued);
  // A late result of the released batch does not count.
  EXPECT_FALSE(*store_->CompleteItem("b1", {"job-a", 1}, "/out/1.png", "", 300));
  ASSERT_TRUE(store_->Lease("b2", "w2", {{"job-a", 1}}, 5000, 300).ok());
  EXPECT_TRUE(*store_->CompleteItem("b2", {"job-a", 1}, "/out/1.png", "", 400));
  auto items = store_->Items("job-a");
  EXPECT_EQ((*items)[1].attempts, 2);
  EXPECT_EQ((*items)[1].worker_id, "w2");
  auto job = store_->FinishJobIfComplete("job-a", 500);
  EXPECT_EQ(job->state, JobState::kDone);
  EXPECT_EQ(job->finished_ms, 500);
}

TEST_F(StoreTest, ItemsFailAfterMaxAttempts) {
  MakeJob("job-a", 1);
  for (int attempt = 1; attempt <= 2; ++attempt) {
    const std::string batch = "b" + std::to_string(attempt);
    ASSERT_TRUE(store_->Lease(batch, "w1", {{"job-a", 0}}, 5000, 100).ok());
    auto released = store_->ReleaseBatch(batch, 6, "engine error", 2);
    EXPECT_EQ((*released)[0].state, attempt < 2 ? ItemState::kQueued : ItemState::kFailed);
  }
  EXPECT_EQ(store_->FinishJobIfComplete("job-a", 500)->state, JobState::kFailed);
}

TEST_F(StoreTest, CancelStopsQueuedAndRunningItems) {
  MakeJob("job-a", 3);
  ASSERT_TRUE(store_->Lease("b1", "w1", {{"job-a", 0}}, 5000, 100).ok());
  auto batches = store_->CancelJob("job-a", 200);
  ASSERT_TRUE(batches.ok());
  EXPECT_EQ(*batches, std::vector<std::string>{"b1"});
  EXPECT_EQ(store_->Counts("job-a")->cancelled, 3);
  EXPECT_EQ(store_->GetJob("job-a")->state, JobState::kCancelled);
  EXPECT_FALSE(*store_->CompleteItem("b1", {"job-a", 0}, "/out/0.png", "", 300));
}

TEST_F(StoreTest, RecoverReturnsRunningItemsToTheQueueAfterARestart) {
  MakeJob("job-a", 2);
  ASSERT_TRUE(store_->Lease("b1", "w1", {{"job-a", 0}, {"job-a", 1}}, 5000, 100).ok());
  ASSERT_TRUE(*store_->CompleteItem("b1", {"job-a", 0}, "/out/0.png", "", 200));
  Reopen();  // as after kill -9: the database file is all that is left
  EXPECT_EQ(*store_->Recover(), 1);
  auto queued = store_->QueuedItems();
  ASSERT_EQ(queued->size(), 1u);
  EXPECT_EQ((*queued)[0].index, 1);
  EXPECT_TRUE(store_->ExpiredBatches(1'000'000)->empty());
  EXPECT_EQ(store_->Counts("job-a")->done, 1);
}

TEST_F(StoreTest, ExpiredLeasesAreFoundAndRenewedByHeartbeats) {
  MakeJob("job-a", 1);
  ASSERT_TRUE(store_->Lease("b1", "w1", {{"job-a", 0}}, 1000, 100).ok());
  EXPECT_EQ(*store_->ExpiredBatches(2000), std::vector<std::string>{"b1"});
  ASSERT_TRUE(store_->RenewLeases("w1", 3000).ok());
  EXPECT_TRUE(store_->ExpiredBatches(2000)->empty());
}

TEST_F(StoreTest, ANonDatabaseFileIsRejectedWithItsPath) {
  store_.reset();
  std::filesystem::remove(path_);
  { FILE* f = fopen(path_.c_str(), "w"); fputs("this is not sqlite, but it is long enough to look like a header.....................", f); fclose(f); }
  auto s = Store::Open(path_.string());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string(s.status().message()).find(path_.string()), std::string::npos) << s.status();
}

TEST_F(StoreTest, LorasAndImg2ImgSettingsSurviveAReopen) {
  ItemRecord it;
  it.params.prompt = "knight";
  it.params.width = it.params.height = 128;
  it.params.sampler = "tcd";
  it.params.tcd_gamma = 0.4;
  it.params.loras = {{"pixel", 0.75, std::string(64, 'a')}, {"lightning", 1.0, ""}};
  it.params.init_image = std::string(64, 'b');
  it.params.denoising_strength = 0.6;
  JobRecord job;
  job.id = "job-w";
  job.name = "knights";
  job.model = "tiny-sdxl";
  bool dedup = false;
  ASSERT_TRUE(store_->CreateJob(job, {it}, &dedup).ok());
  Reopen();
  auto items = store_->Items("job-w");
  ASSERT_TRUE(items.ok() && items->size() == 1u);
  const GenerationInfo& p = (*items)[0].params;
  ASSERT_EQ(p.loras.size(), 2u);
  EXPECT_EQ(p.loras[0].name, "pixel");
  EXPECT_EQ(p.loras[0].strength, 0.75);
  EXPECT_EQ(p.loras[0].sha256, std::string(64, 'a'));
  EXPECT_TRUE(p.loras[1].sha256.empty());
  EXPECT_EQ(p.init_image, std::string(64, 'b'));
  EXPECT_EQ(p.denoising_strength, 0.6);
  EXPECT_EQ(p.tcd_gamma, 0.4);
}

TEST_F(StoreTest, ADatabaseFromBeforeLorasGetsTheirColumnAndKeepsItsItems) {
  MakeJob("job-old", 2);
  store_.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.string().c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "ALTER TABLE items DROP COLUMN workflow", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  Reopen();
  auto items = store_->Items("job-old");
  ASSERT_TRUE(items.ok()) << items.status();
  EXPECT_EQ(items->size(), 2u);
  EXPECT_TRUE((*items)[0].params.loras.empty());
  EXPECT_TRUE((*items)[0].params.init_image.empty());
}

}  // namespace
}  // namespace spriteforge::coordinator
