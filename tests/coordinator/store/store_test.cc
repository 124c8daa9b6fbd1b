// The coordinator's store on a real database, SQLite and PostgreSQL alike: job creation
// and idempotency, the item life cycle through leases, late results, cancellation,
// recovery after a restart and the leader lease. SQLite-only cases (file checks, upgrades
// of old files) are plain tests at the end.
#include "coordinator/store/store.h"

#include <gtest/gtest.h>

#include <sqlite3.h>

#include <chrono>
#include <filesystem>

#include "absl/strings/str_cat.h"
#ifdef SPRITEFORGE_WITH_POSTGRES
#include "coordinator/store/postgres.h"
#endif
#include "coordinator/store/sqlite.h"

#include "tests/coordinator/store/store_backends.h"

namespace spriteforge::coordinator {
namespace {

using testing::Backend;
using testing::TestDatabase;

class StoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    SPRITEFORGE_SKIP_WITHOUT_POSTGRES(GetParam());
    db_ = std::make_unique<TestDatabase>(GetParam());
    ASSERT_FALSE(db_->spec().empty());
    path_ = db_->spec();
    Reopen();
  }
  void TearDown() override {
    store_.reset();
    db_.reset();
  }
  void Reopen() {
    store_.reset();
    auto s = Store::Open(path_.string());
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
  }
  // Statements on the database itself, past the store, as damage or an operator's edit would.
  void Damage(const std::string& sql) {
    store_.reset();
    absl::Status s;
    if (GetParam() == Backend::kSqlite) {
      auto db = Database::Open(path_.string());
      s = db.ok() ? (*db)->Exec(sql) : db.status();
    } else {
#ifdef SPRITEFORGE_WITH_POSTGRES
      auto db = PgConnection::Open(path_.string());
      s = db.ok() ? (*db)->Exec(sql) : db.status();
#else
      s = absl::UnavailableError("built without PostgreSQL");
#endif
    }
    ASSERT_TRUE(s.ok()) << s;
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
      it.image.set_prompt("red potion");
      it.image.set_seed(0xFFFFFFFFFFFFFFF0ull + i);  // above INT64_MAX
      it.sampling.set_width(128);
      it.sampling.set_height(128);
      it.sampling.set_steps(4);
      it.sampling.set_cfg(5);
      it.sampling.set_sampler(v1::SAMPLER_EULER);
      it.sampling.set_schedule(v1::SCHEDULE_NORMAL);
      list.push_back(it);
    }
    bool dedup = false;
    auto created = store_->CreateJob(job, list, &dedup);
    EXPECT_TRUE(created.ok()) << created.status();
    EXPECT_FALSE(dedup);
    return *created;
  }
  // A job begun but not queued: its items are still being added.
  void BeginLoadingJob(const std::string& id) {
    JobRecord job;
    job.id = id;
    job.name = "loading";
    job.model = "tiny-sdxl";
    bool dedup = false;
    auto begun = store_->BeginJob(job, &dedup);
    ASSERT_TRUE(begun.ok()) << begun.status();
    ASSERT_FALSE(dedup);
  }
  std::unique_ptr<TestDatabase> db_;
  std::filesystem::path path_;  // the --db value: a file, or a postgresql:// URL
  std::unique_ptr<Store> store_;
};
SPRITEFORGE_ALL_STORE_BACKENDS(StoreTest);

// The SQLite-only cases: the same fixture on a file.
class SqliteStoreTest : public StoreTest {};
INSTANTIATE_TEST_SUITE_P(Backends, SqliteStoreTest, ::testing::Values(Backend::kSqlite), testing::BackendName);

TEST_P(StoreTest, CreatesJobsAndKeepsTheirItemsInOrder) {
  MakeJob("job-a", 3);
  auto items = store_->Items("job-a");
  ASSERT_TRUE(items.ok());
  ASSERT_EQ(items->size(), 3u);
  EXPECT_EQ((*items)[2].index, 2);
  EXPECT_EQ((*items)[2].image.seed(), 0xFFFFFFFFFFFFFFF2ull);
  EXPECT_FALSE((*items)[0].image.has_negative());
  auto counts = store_->Counts("job-a");
  EXPECT_EQ(counts->total, 3);
  EXPECT_EQ(counts->queued, 3);
  EXPECT_EQ(store_->GetJob("nope").status().code(), absl::StatusCode::kNotFound);
  auto job = store_->GetJob("job-a");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_FALSE(job->postprocess.has_value());  // NULL: the job makes no sprites
  EXPECT_EQ(job->preview_every, 0);
}

TEST_P(StoreTest, SameIdempotencyKeyReturnsTheFirstJob) {
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

TEST_P(StoreTest, LeaseCompleteAndLateResultsOfAReleasedBatch) {
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

TEST_P(StoreTest, ItemsFailAfterMaxAttempts) {
  MakeJob("job-a", 1);
  for (int attempt = 1; attempt <= 2; ++attempt) {
    const std::string batch = "b" + std::to_string(attempt);
    ASSERT_TRUE(store_->Lease(batch, "w1", {{"job-a", 0}}, 5000, 100).ok());
    auto released = store_->ReleaseBatch(batch, 6, "engine error", 2);
    EXPECT_EQ((*released)[0].state, attempt < 2 ? ItemState::kQueued : ItemState::kFailed);
  }
  EXPECT_EQ(store_->FinishJobIfComplete("job-a", 500)->state, JobState::kFailed);
}

TEST_P(StoreTest, CancelStopsQueuedAndRunningItems) {
  MakeJob("job-a", 3);
  ASSERT_TRUE(store_->Lease("b1", "w1", {{"job-a", 0}}, 5000, 100).ok());
  auto batches = store_->CancelJob("job-a", 200);
  ASSERT_TRUE(batches.ok());
  EXPECT_EQ(*batches, std::vector<std::string>{"b1"});
  EXPECT_EQ(store_->Counts("job-a")->cancelled, 3);
  EXPECT_EQ(store_->GetJob("job-a")->state, JobState::kCancelled);
  EXPECT_FALSE(*store_->CompleteItem("b1", {"job-a", 0}, "/out/0.png", "", 300));
}

TEST_P(StoreTest, AFinishedJobIsDeletedWithItsItemsAndAnUnfinishedOneIsKept) {
  MakeJob("job-a", 2);
  MakeJob("job-b", 1);
  EXPECT_EQ(store_->DeleteJob("job-a").code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(store_->CancelJob("job-a", 200).ok());
  ASSERT_TRUE(store_->DeleteJob("job-a").ok());
  EXPECT_EQ(store_->GetJob("job-a").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(store_->Items("job-a")->empty());
  EXPECT_EQ(store_->DeleteJob("job-a").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Items("job-b")->size(), 1u);
  EXPECT_EQ(store_->ListJobs(10)->size(), 1u);
}

// Cancelling in steps: at once the job is cancelled and its running items too; its queued
// items then go a chunk at a time, each once; it stays unfinished (so a restart completes the
// cancel) until the last chunk, and finishes cancelled.
TEST_P(StoreTest, ACancelInStepsCancelsEachItemOnceAndFinishesCancelled) {
  MakeJob("job-a", 5);
  ASSERT_TRUE(store_->Lease("b1", "w1", {{"job-a", 2}}, 5000, 100).ok());
  auto batches = store_->StartCancel("job-a");
  ASSERT_TRUE(batches.ok()) << batches.status();
  EXPECT_EQ(*batches, std::vector<std::string>{"b1"});
  EXPECT_EQ(store_->GetJob("job-a")->state, JobState::kCancelled);
  ASSERT_EQ(store_->UnfinishedJobs()->size(), 1u);
  EXPECT_EQ(store_->Counts("job-a")->queued, 4);
  EXPECT_EQ(*store_->CancelQueuedItems("job-a", 3), 3);
  EXPECT_EQ(store_->FinishJobIfComplete("job-a", 200)->finished_ms, 0);  // one still queued
  EXPECT_EQ(*store_->CancelQueuedItems("job-a", 3), 1);
  EXPECT_EQ(*store_->CancelQueuedItems("job-a", 3), 0);
  auto finished = store_->FinishJobIfComplete("job-a", 300);
  EXPECT_EQ(finished->state, JobState::kCancelled);
  EXPECT_EQ(finished->finished_ms, 300);
  EXPECT_EQ(store_->Counts("job-a")->cancelled, 5);
  auto page = store_->ItemsPage("job-a", 1, 2);
  ASSERT_EQ(page->size(), 2u);
  EXPECT_EQ((*page)[0].index, 2);
  EXPECT_EQ((*page)[1].index, 3);
  EXPECT_TRUE(store_->StartCancel("job-a")->empty());  // a finished job is left as it is
}

TEST_P(StoreTest, RecoverReturnsRunningItemsToTheQueueAfterARestart) {
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

TEST_P(StoreTest, ExpiredLeasesAreFoundAndRenewedByHeartbeats) {
  MakeJob("job-a", 1);
  ASSERT_TRUE(store_->Lease("b1", "w1", {{"job-a", 0}}, 1000, 100).ok());
  EXPECT_EQ(*store_->ExpiredBatches(2000), std::vector<std::string>{"b1"});
  ASSERT_TRUE(store_->RenewLeases("w1", 3000).ok());
  EXPECT_TRUE(store_->ExpiredBatches(2000)->empty());
}

TEST_P(StoreTest, AStoreThatLostATableIsRefusedRatherThanMadeAgainEmpty) {
  MakeJob("job-a", 2);
  Damage("DROP TABLE items");
  for (int attempt = 0; attempt < 2; ++attempt) {  // refused as it is: nothing made again
    auto s = Store::Open(path_.string());
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_NE(std::string(s.status().message()).find("has lost its items table; restore it from a backup"),
              std::string::npos)
        << s.status();
  }
}

TEST_P(StoreTest, RowsInAStateThisCoordinatorDoesNotKnowAreRefusedAtStart) {
  MakeJob("job-a", 2);
  Damage("UPDATE items SET state = 9 WHERE idx = 1");
  auto s = Store::Open(path_.string());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string(s.status().message()).find("items row job-a/1 has unknown state 9"), std::string::npos)
      << s.status();
  Damage("UPDATE items SET state = 1; UPDATE jobs SET state = 42");
  s = Store::Open(path_.string());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string(s.status().message()).find("jobs row job-a has unknown state 42"), std::string::npos)
      << s.status();
}

TEST_P(SqliteStoreTest, ADatabaseOfANewerSchemaVersionIsRefused) {
  Damage("PRAGMA user_version = 2");
  auto s = Store::Open(path_.string());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().message(), "database " + path_.string() +
                                      " has schema version 2; this coordinator knows versions up to 1 (a newer "
                                      "spriteforge wrote it)");
}

TEST_P(SqliteStoreTest, ANonDatabaseFileIsRejectedWithItsPath) {
  store_.reset();
  std::filesystem::remove(path_);
  { FILE* f = fopen(path_.c_str(), "w"); fputs("this is not sqlite, but it is long enough to look like a header.....................", f); fclose(f); }
  auto s = Store::Open(path_.string());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string(s.status().message()).find(path_.string()), std::string::npos) << s.status();
}

TEST_P(StoreTest, ImageParametersAndPostprocessSettingsSurviveAReopen) {
  ItemRecord it;
  it.image.set_prompt("knight");
  it.image.set_negative("");  // empty, not unset
  it.image.set_seed(42);
  it.image.set_init_image_sha256(std::string(64, 'b'));
  it.sampling.set_width(128);
  it.sampling.set_height(96);
  it.sampling.set_sampler(v1::SAMPLER_TCD);
  it.sampling.set_tcd_gamma(0.4);
  it.sampling.set_strength(0.6);
  v1::LoraRef* lora = it.sampling.add_loras();
  lora->set_name("pixel");
  lora->set_strength(0.75);
  lora->set_sha256(std::string(64, 'a'));
  it.sampling.add_loras()->set_name("lightning");
  JobRecord job;
  job.id = "job-w";
  job.name = "knights";
  job.model = "tiny-sdxl";
  job.postprocess.emplace().set_palette_name("pico8");
  job.postprocess->set_width(32);
  job.preview_every = 3;
  bool dedup = false;
  ASSERT_TRUE(store_->CreateJob(job, {it}, &dedup).ok());
  Reopen();
  auto items = store_->Items("job-w");
  ASSERT_TRUE(items.ok() && items->size() == 1u);
  EXPECT_EQ((*items)[0].image.SerializeAsString(), it.image.SerializeAsString());
  EXPECT_EQ((*items)[0].sampling.SerializeAsString(), it.sampling.SerializeAsString());
  EXPECT_TRUE((*items)[0].image.has_negative());
  auto stored = store_->GetJob("job-w");
  ASSERT_TRUE(stored.ok() && stored->postprocess.has_value());
  EXPECT_EQ(stored->postprocess->palette_name(), "pico8");
  EXPECT_EQ(stored->postprocess->width(), 32);
  EXPECT_EQ(stored->preview_every, 3);
}

// A database from before the serialized columns: its items had a column per field and a
// workflow JSON, its jobs the postprocess section as JSON. Opening converts them in place.
TEST_P(SqliteStoreTest, ADatabaseWithAColumnPerFieldIsConvertedAndKeepsItsItems) {
  store_.reset();
  std::filesystem::remove(path_);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.string().c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, R"sql(
CREATE TABLE jobs(seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
  model TEXT NOT NULL, priority INTEGER NOT NULL, state INTEGER NOT NULL, created_ms INTEGER NOT NULL,
  started_ms INTEGER NOT NULL DEFAULT 0, finished_ms INTEGER NOT NULL DEFAULT 0, idempotency_key TEXT,
  postprocess TEXT NOT NULL DEFAULT '', owner TEXT NOT NULL DEFAULT '');
CREATE TABLE items(job_id TEXT NOT NULL REFERENCES jobs(id), idx INTEGER NOT NULL, prompt TEXT NOT NULL,
  negative TEXT, seed INTEGER NOT NULL, random_seed INTEGER NOT NULL, width INTEGER NOT NULL,
  height INTEGER NOT NULL, steps INTEGER NOT NULL, cfg REAL NOT NULL, sampler TEXT NOT NULL,
  schedule TEXT NOT NULL, model TEXT NOT NULL, tileable INTEGER NOT NULL, state INTEGER NOT NULL,
  batch_id TEXT NOT NULL DEFAULT '', worker_id TEXT NOT NULL DEFAULT '', attempts INTEGER NOT NULL DEFAULT 0,
  image_path TEXT NOT NULL DEFAULT '', sprite_path TEXT NOT NULL DEFAULT '', failure INTEGER NOT NULL DEFAULT 0,
  failure_message TEXT NOT NULL DEFAULT '', done_ms INTEGER NOT NULL DEFAULT 0,
  workflow TEXT NOT NULL DEFAULT '', PRIMARY KEY(job_id, idx));
INSERT INTO jobs(id, name, model, priority, state, created_ms, postprocess)
  VALUES('job-old', 'old', 'tiny-sdxl', 0, 1, 5, '{"palette":"gameboy","pixelate":"32x32"}');
INSERT INTO items(job_id, idx, prompt, negative, seed, random_seed, width, height, steps, cfg, sampler, schedule,
  model, tileable, state, workflow)
  VALUES('job-old', 0, 'potion', NULL, -2, 0, 128, 192, 4, 5.5, 'euler_ancestral', 'karras', 'tiny-sdxl', 1, 1, ''),
        ('job-old', 1, 'knight', 'blurry', 7, 1, 128, 128, 4, 1, 'tcd', 'normal', 'tiny-sdxl', 0, 1,
         '{"loras":[{"name":"pixel","strength":0.5,"sha256":""}],"init_image":"bb","strength":0.6,"tcd_gamma":0.4}');
)sql", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  Reopen();
  auto items = store_->Items("job-old");
  ASSERT_TRUE(items.ok()) << items.status();
  ASSERT_EQ(items->size(), 2u);
  const ItemRecord& plain = (*items)[0];
  EXPECT_EQ(plain.image.prompt(), "potion");
  EXPECT_FALSE(plain.image.has_negative());
  EXPECT_EQ(plain.image.seed(), 0xFFFFFFFFFFFFFFFEull);  // the bit pattern of -2
  EXPECT_EQ(plain.sampling.width(), 128);
  EXPECT_EQ(plain.sampling.height(), 192);
  EXPECT_EQ(plain.sampling.cfg(), 5.5);
  EXPECT_EQ(plain.sampling.sampler(), v1::SAMPLER_EULER_ANCESTRAL);
  EXPECT_EQ(plain.sampling.schedule(), v1::SCHEDULE_KARRAS);
  EXPECT_TRUE(plain.sampling.tileable());
  const ItemRecord& workflow = (*items)[1];
  EXPECT_EQ(workflow.image.negative(), "blurry");
  EXPECT_TRUE(workflow.random_seed);
  EXPECT_EQ(workflow.image.init_image_sha256(), "bb");
  EXPECT_EQ(workflow.sampling.strength(), 0.6);
  EXPECT_EQ(workflow.sampling.tcd_gamma(), 0.4);
  ASSERT_EQ(workflow.sampling.loras_size(), 1);
  EXPECT_EQ(workflow.sampling.loras(0).name(), "pixel");
  EXPECT_EQ(workflow.sampling.loras(0).strength(), 0.5);
  auto job = store_->GetJob("job-old");
  ASSERT_TRUE(job.ok() && job->postprocess.has_value()) << job.status();
  EXPECT_EQ(job->postprocess->palette_name(), "gameboy");
  EXPECT_EQ(job->postprocess->width(), 32);
  // New items go into the converted table, and a second open leaves it as it is.
  JobRecord fresh;
  fresh.id = "job-new";
  fresh.name = "new";
  fresh.model = "tiny-sdxl";
  bool dedup = false;
  ASSERT_TRUE(store_->CreateJob(fresh, {plain}, &dedup).ok());
  Reopen();
  EXPECT_EQ(store_->Items("job-new")->at(0).image.prompt(), "potion");
  EXPECT_EQ(store_->Items("job-old")->size(), 2u);
}

TEST_P(StoreTest, ItemsAndCountsSurviveAReopen) {
  MakeJob("job-a", 3);
  ASSERT_TRUE(store_->Lease("b1", "w1", {{"job-a", 0}}, 5000, 100).ok());
  ASSERT_TRUE(*store_->CompleteItem("b1", {"job-a", 0}, "/out/0.png", "/out/0.sprite.png", 200));
  Reopen();
  auto items = store_->Items("job-a");
  ASSERT_TRUE(items.ok()) << items.status();
  ASSERT_EQ(items->size(), 3u);
  EXPECT_EQ((*items)[0].image.seed(), 0xFFFFFFFFFFFFFFF0ull);
  EXPECT_EQ((*items)[2].image.seed(), 0xFFFFFFFFFFFFFFF2ull);
  EXPECT_EQ((*items)[0].sampling.cfg(), 5);
  EXPECT_EQ((*items)[0].sprite_path, "/out/0.sprite.png");
  EXPECT_EQ((*items)[0].attempts, 1);
  EXPECT_FALSE((*items)[1].image.has_negative());
  EXPECT_EQ(store_->Counts("job-a")->done, 1);
  EXPECT_EQ(store_->Counts("job-a")->queued, 2);
  EXPECT_EQ((*store_->Totals())["queued"], 2);
}

TEST_P(StoreTest, ManyItemsGoInChunksAndComeBackInOrder) {
  ASSERT_NO_FATAL_FAILURE(BeginLoadingJob("job-big"));
  std::vector<ItemRecord> chunk;
  for (int i = 0; i < 1200; ++i) {
    ItemRecord it;
    it.index = i;
    it.image.set_prompt("coin " + std::to_string(i));
    it.image.set_negative("blurry");
    chunk.push_back(it);
  }
  ASSERT_TRUE(store_->AddItems("job-big", chunk).ok());
  EXPECT_TRUE(store_->ListJobs(10)->empty());  // still loading: nobody sees it
  ASSERT_TRUE(store_->QueueJob("job-big").ok());
  auto queued = store_->QueuedItems("job-big", 999, 5);
  ASSERT_TRUE(queued.ok()) << queued.status();
  ASSERT_EQ(queued->size(), 5u);
  EXPECT_EQ((*queued)[0].index, 1000);
  EXPECT_EQ((*queued)[0].image.prompt(), "coin 1000");
  EXPECT_EQ((*queued)[0].image.negative(), "blurry");
  EXPECT_EQ(store_->Counts("job-big")->total, 1200);
}

TEST_P(StoreTest, ALoadingJobIsDroppedByRecover) {
  ASSERT_NO_FATAL_FAILURE(BeginLoadingJob("job-cut"));
  ItemRecord it;
  it.image.set_prompt("x");
  ASSERT_TRUE(store_->AddItems("job-cut", {it}).ok());
  ASSERT_TRUE(store_->Recover().ok());
  EXPECT_EQ(store_->GetJob("job-cut").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(StoreTest, WorkersAreUpsertedAndCountTheirImages) {
  ASSERT_TRUE(store_->UpsertWorker({"w1", R"({"model":"tiny"})", 100, 0}).ok());
  ASSERT_TRUE(store_->UpsertWorker({"w1", R"({"model":"tiny2"})", 200, 0}).ok());
  ASSERT_TRUE(store_->AddWorkerImages("w1", 4, 300).ok());
  auto workers = store_->ListWorkers();
  ASSERT_TRUE(workers.ok()) << workers.status();
  ASSERT_EQ(workers->size(), 1u);
  EXPECT_EQ((*workers)[0].info_json, R"({"model":"tiny2"})");
  EXPECT_EQ((*workers)[0].images_done, 4);
  EXPECT_EQ((*workers)[0].last_seen_ms, 300);
}

TEST_P(StoreTest, DeletedWorkersAreForgottenAndTheirResultsStay) {
  MakeJob("job-a", 1);
  ASSERT_TRUE(store_->Lease("b1", "w1", {{"job-a", 0}}, 5000, 100).ok());
  ASSERT_TRUE(*store_->CompleteItem("b1", {"job-a", 0}, "/out/0.png", "", 200));
  for (const char* id : {"w1", "w2", "w3"}) ASSERT_TRUE(store_->UpsertWorker({id, "{}", 100, 0}).ok());
  ASSERT_TRUE(store_->DeleteWorkers({"w1", "w3", "never-known"}).ok());
  ASSERT_TRUE(store_->DeleteWorkers({}).ok());
  auto workers = store_->ListWorkers();
  ASSERT_TRUE(workers.ok()) << workers.status();
  ASSERT_EQ(workers->size(), 1u);
  EXPECT_EQ((*workers)[0].id, "w2");
  EXPECT_EQ((*store_->Items("job-a"))[0].worker_id, "w1");  // its history stays with the item
}

TEST_P(StoreTest, FailQueuedItemsFailsOnlyQueuedOnes) {
  MakeJob("job-a", 3);
  ASSERT_TRUE(store_->Lease("b1", "w1", {{"job-a", 0}}, 5000, 100).ok());
  auto failed = store_->FailQueuedItems("job-a", 9, "no worker serves tiny-sdxl");
  ASSERT_TRUE(failed.ok()) << failed.status();
  EXPECT_EQ(failed->size(), 2u);
  EXPECT_EQ(store_->Counts("job-a")->failed, 2);
  EXPECT_EQ(store_->Counts("job-a")->running, 1);
  EXPECT_EQ(store_->BatchesOfWorker("w1")->size(), 1u);
}

// Only the listed ones, and of those only the queued (a set's images whose reference failed).
TEST_P(StoreTest, FailQueuedItemsByIndexFailsOnlyThoseStillQueued) {
  MakeJob("job-a", 4);
  ASSERT_TRUE(store_->Lease("b1", "w1", {{"job-a", 1}}, 5000, 100).ok());
  auto failed = store_->FailQueuedItems("job-a", {1, 2, 3}, 6, "the set's first image failed");
  ASSERT_TRUE(failed.ok()) << failed.status();
  ASSERT_EQ(failed->size(), 2u);
  EXPECT_EQ((*failed)[0].index, 2);
  EXPECT_EQ((*failed)[1].state, ItemState::kFailed);
  auto items = store_->Items("job-a");
  ASSERT_TRUE(items.ok()) << items.status();
  EXPECT_EQ((*items)[0].state, ItemState::kQueued);
  EXPECT_EQ((*items)[1].state, ItemState::kRunning);
  EXPECT_EQ((*items)[3].state, ItemState::kFailed);
  EXPECT_EQ((*items)[3].failure, 6);
  EXPECT_EQ((*items)[3].failure_message, "the set's first image failed");
  EXPECT_EQ(store_->Counts("job-a")->failed, 2);
}

// The leader lease is compare-and-set on the database's clock: of two claims on the same
// lapsed lease one wins; the holder renews; a lease that ran out can be taken.
TEST_P(StoreTest, TheLeaderLeaseHasOneHolderAtATime) {
  auto other = Store::Open(path_.string());  // a second coordinator's connection
  ASSERT_TRUE(other.ok()) << other.status();
  auto seen = store_->ReadLeader();
  ASSERT_TRUE(seen.ok()) << seen.status();
  EXPECT_EQ(seen->holder, "");
  EXPECT_GT(seen->now_ms, 1'600'000'000'000);  // the database's clock, in ms since 1970
  EXPECT_TRUE(*store_->ClaimLeader(*seen, "a", "10.0.0.1:50051", 60000));
  EXPECT_FALSE(*(*other)->ClaimLeader(*seen, "b", "10.0.0.2:50051", 60000));  // a stale view loses
  auto now = (*other)->ReadLeader();
  EXPECT_EQ(now->holder, "a");
  EXPECT_EQ(now->address, "10.0.0.1:50051");
  EXPECT_GE(now->expires_ms, now->now_ms + 50000);
  EXPECT_TRUE(*store_->ClaimLeader(*now, "a", "10.0.0.1:50051", 1));  // renewal, here to a 1 ms lease
  auto renewed = store_->ReadLeader();
  while (renewed->now_ms <= renewed->expires_ms) renewed = (*other)->ReadLeader();
  EXPECT_TRUE(*(*other)->ClaimLeader(*renewed, "b", "10.0.0.2:50051", 60000));
  EXPECT_EQ(store_->ReadLeader()->holder, "b");
}

// Fencing: a leader's store carries the epoch it took the lead in. Once another coordinator
// has taken over (the epoch moved on), the old leader's writes fail in their own transaction,
// saying why, and change nothing; the new leader's succeed.
TEST_P(StoreTest, ALeaderFencedByATakeoverCannotWrite) {
  MakeJob("job-a", 2);
  auto other = Store::Open(path_.string());  // the standby's connection
  ASSERT_TRUE(other.ok()) << other.status();
  auto free = store_->ReadLeader();
  ASSERT_TRUE(*store_->ClaimLeader(*free, "a", "10.0.0.1:50051", 1));
  const int64_t mine = store_->ReadLeader()->epoch;
  EXPECT_EQ(mine, free->epoch + 1);
  std::vector<std::string> fenced;
  store_->SetFencingEpoch(mine, [&](const absl::Status& s) { fenced.emplace_back(s.message()); });
  ASSERT_TRUE(store_->UpsertWorker({"w1", "{}", 100, 0}).ok());  // while it leads, it writes

  auto lapsed = (*other)->ReadLeader();
  while (lapsed->now_ms <= lapsed->expires_ms) lapsed = (*other)->ReadLeader();
  ASSERT_TRUE(*(*other)->ClaimLeader(*lapsed, "b", "10.0.0.2:50051", 60000));
  const int64_t theirs = (*other)->ReadLeader()->epoch;
  ASSERT_EQ(theirs, mine + 1);
  (*other)->SetFencingEpoch(theirs);

  const std::string why = absl::StrCat("fenced: another coordinator leads (epoch ", theirs, " > ", mine, ")");
  for (const absl::Status& s : {store_->Lease("b1", "w1", {{"job-a", 0}}, 5000, 100),
                                store_->CancelJob("job-a", 200).status(), store_->UpsertWorker({"w1", "{}", 300, 0})}) {
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    EXPECT_EQ(s.message(), why);
  }
  EXPECT_EQ(fenced, std::vector<std::string>(3, why));
  EXPECT_EQ((*other)->Counts("job-a")->queued, 2);  // the old leader changed nothing
  ASSERT_TRUE((*other)->Lease("b2", "w2", {{"job-a", 0}}, 5000, 400).ok());
  ASSERT_TRUE((*other)->CancelJob("job-a", 500).ok());
  EXPECT_EQ((*other)->Counts("job-a")->cancelled, 2);
}

// Result files go in place inside the result transaction, after its fence check: the store
// calls `place` with the results it will record (the item runs under the batch) and records
// only those placed; once another coordinator leads, the old leader's result transaction
// fails its check before `place` is called, so it neither moves a file nor records anything.
TEST_P(StoreTest, ResultFilesArePlacedOnlyInsideATransactionWhoseEpochHolds) {
  MakeJob("job-a", 3);
  auto other = Store::Open(path_.string());  // the standby's connection
  ASSERT_TRUE(other.ok()) << other.status();
  auto free = store_->ReadLeader();
  ASSERT_TRUE(*store_->ClaimLeader(*free, "a", "10.0.0.1:50051", 1));
  const int64_t mine = store_->ReadLeader()->epoch;
  store_->SetFencingEpoch(mine);
  ASSERT_TRUE(store_->Lease("b1", "w1", {{"job-a", 0}, {"job-a", 1}, {"job-a", 2}}, 5000, 100).ok());

  std::vector<std::vector<bool>> offered;
  auto place = [&](std::vector<bool> placed) -> Store::PlaceResults {
    return [&offered, placed](const std::vector<bool>& accepted, std::chrono::steady_clock::time_point deadline) {
      EXPECT_GT(deadline, std::chrono::steady_clock::now());
      offered.push_back(accepted);
      return placed;
    };
  };
  // Item 0 placed; item 1 named under another batch (not offered); item 2's files failed.
  auto recorded = store_->CompleteItems({{"b1", {"job-a", 0}, "/out/0.png", ""},
                                         {"b9", {"job-a", 1}, "/out/1.png", ""},
                                         {"b1", {"job-a", 2}, "/out/2.png", ""}},
                                        200, place({true, false, false}));
  ASSERT_TRUE(recorded.ok()) << recorded.status();
  EXPECT_EQ(*recorded, (std::vector<bool>{true, false, false}));
  EXPECT_EQ(offered, (std::vector<std::vector<bool>>{{true, false, true}}));
  EXPECT_EQ(store_->Counts("job-a")->done, 1);
  EXPECT_EQ(store_->Counts("job-a")->running, 2);  // item 2 was offered but not placed

  auto lapsed = (*other)->ReadLeader();
  while (lapsed->now_ms <= lapsed->expires_ms) lapsed = (*other)->ReadLeader();
  ASSERT_TRUE(*(*other)->ClaimLeader(*lapsed, "b", "10.0.0.2:50051", 60000));
  offered.clear();
  recorded = store_->CompleteItems({{"b1", {"job-a", 2}, "/out/2.png", ""}}, 300, place({true}));
  EXPECT_EQ(recorded.status().code(), absl::StatusCode::kFailedPrecondition) << recorded.status();
  EXPECT_TRUE(offered.empty()) << "a fenced leader was asked to place files";
  EXPECT_EQ((*other)->Counts("job-a")->done, 1);
  EXPECT_EQ((*other)->Items("job-a")->at(2).image_path, "");
}

// Paths and ids travel to PostgreSQL inside array literals: quotes, backslashes, commas and
// braces must come back as they went in. A result listed twice in a group counts once.
TEST_P(StoreTest, GroupedResultsKeepOddCharactersAndCountOnce) {
  const std::string odd = "job \"q\" \\ {a,b} é";
  MakeJob(odd, 2);
  ASSERT_TRUE(store_->Lease("b \"1\"", "w,1", {{odd, 0}, {odd, 1}}, 5000, 100).ok());
  const std::string path = "/out/\"x\"\\{0},.png";
  auto accepted = store_->CompleteItems({{"b \"1\"", {odd, 0}, path, ""},
                                         {"b \"1\"", {odd, 0}, path, ""},
                                         {"other", {odd, 1}, "/out/1.png", ""},
                                         {"b \"1\"", {odd, 1}, "/out/1.png", "NULL"}},
                                        200);
  ASSERT_TRUE(accepted.ok()) << accepted.status();
  EXPECT_EQ(*accepted, (std::vector<bool>{true, false, false, true}));
  auto items = store_->Items(odd);
  ASSERT_TRUE(items.ok()) << items.status();
  EXPECT_EQ((*items)[0].image_path, path);
  EXPECT_EQ((*items)[0].worker_id, "w,1");
  EXPECT_EQ((*items)[1].sprite_path, "NULL");
  EXPECT_EQ(store_->Counts(odd)->done, 2);
}

TEST_P(StoreTest, ALeaseOfAnItemNotQueuedChangesNothing) {
  MakeJob("job-a", 3);
  ASSERT_TRUE(store_->Lease("b1", "w1", {{"job-a", 1}}, 5000, 100).ok());
  auto s = store_->Lease("b2", "w2", {{"job-a", 0}, {"job-a", 1}, {"job-a", 2}}, 5000, 100);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("job-a/1"), std::string::npos) << s;
  EXPECT_EQ(store_->Counts("job-a")->queued, 2);
  EXPECT_EQ(store_->BatchesOfWorker("w2")->size(), 0u);
  EXPECT_EQ(store_->Items("job-a")->at(0).attempts, 0);
}

TEST(StoreOpenTest, APostgresUrlIsRecognized) {
  EXPECT_TRUE(IsPostgresUrl("postgresql://u@db.example/spriteforge"));
  EXPECT_TRUE(IsPostgresUrl("postgres://db/x"));
  EXPECT_FALSE(IsPostgresUrl("/var/lib/spriteforge/jobs.db"));
  EXPECT_FALSE(IsPostgresUrl("postgresql.db"));
}

TEST(StoreOpenTest, AnUnreachableServerIsUnavailableWithItsUrlButNotItsPassword) {
  auto s = Store::Open("postgresql://spriteforge:secret@127.0.0.1:1/none?connect_timeout=2");
  ASSERT_FALSE(s.ok());
#ifdef SPRITEFORGE_WITH_POSTGRES
  EXPECT_EQ(s.status().code(), absl::StatusCode::kUnavailable) << s.status();
  EXPECT_NE(std::string(s.status().message()).find("127.0.0.1:1"), std::string::npos) << s.status();
#endif
  EXPECT_EQ(std::string(s.status().message()).find("secret"), std::string::npos) << s.status();
}

}  // namespace
}  // namespace spriteforge::coordinator
