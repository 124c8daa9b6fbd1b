// The job history in the store, SQLite and PostgreSQL alike: jobs found by words of their
// name, model, owner, id, state or the prompts of their entries, within a date range, a page at
// a time with the total over thousands of jobs; and jobs of stores made before the search
// get their search text when the store opens.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "coordinator/store/store.h"
#ifdef SPRITEFORGE_WITH_POSTGRES
#include "coordinator/store/postgres.h"
#endif
#include "coordinator/store/sqlite.h"
#include "tests/coordinator/store/store_backends.h"

namespace spriteforge::coordinator {
namespace {

using testing::Backend;
using Ids = std::vector<std::string>;
using testing::TestDatabase;

class StoreHistoryTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    SPRITEFORGE_SKIP_WITHOUT_POSTGRES(GetParam());
    db_ = std::make_unique<TestDatabase>(GetParam());
    ASSERT_FALSE(db_->spec().empty());
    Reopen();
  }
  void TearDown() override {
    store_.reset();
    db_.reset();
  }
  void Reopen() {
    store_.reset();
    auto s = Store::Open(db_->spec());
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
  }
  // Statements on the database itself, past the store (the store closed meanwhile).
  void RunSql(const std::string& sqlite, const std::string& postgres) {
    store_.reset();
    absl::Status s;
    if (GetParam() == Backend::kSqlite) {
      auto db = Database::Open(db_->spec());
      s = db.ok() ? (*db)->Exec(sqlite) : db.status();
    } else {
#ifdef SPRITEFORGE_WITH_POSTGRES
      auto db = PgConnection::Open(db_->spec());
      s = db.ok() ? (*db)->Exec(postgres) : db.status();
#else
      s = absl::UnavailableError("built without PostgreSQL");
#endif
    }
    ASSERT_TRUE(s.ok()) << s;
    Reopen();
  }
  void Create(const std::string& id, const std::string& name, const std::string& model, int64_t created_ms,
              const std::vector<std::string>& prompts, const std::string& owner = "") {
    JobRecord job;
    job.id = id;
    job.name = name;
    job.model = model;
    job.created_ms = created_ms;
    job.owner = owner;
    std::vector<ItemRecord> items;
    for (const std::string& prompt : prompts) {
      for (int k = 0; k < 2; ++k) {  // two images of each prompt
        ItemRecord it;
        it.index = static_cast<int>(items.size());
        it.image.set_prompt(prompt);
        items.push_back(it);
      }
    }
    bool dedup = false;
    auto created = store_->CreateJob(job, items, &dedup);
    ASSERT_TRUE(created.ok()) << created.status();
  }
  // The ids of the matching jobs (newest first) and the total.
  std::pair<std::vector<std::string>, int64_t> Find(JobQuery query) {
    auto page = store_->FindJobs(query);
    EXPECT_TRUE(page.ok()) << page.status();
    if (!page.ok()) return {};
    std::vector<std::string> ids;
    for (const JobRecord& job : page->jobs) ids.push_back(job.id);
    return {ids, page->total};
  }
  std::vector<std::string> Search(const std::string& text) { return Find(JobQuery{text}).first; }

  std::unique_ptr<TestDatabase> db_;
  std::unique_ptr<Store> store_;
};
SPRITEFORGE_ALL_STORE_BACKENDS(StoreHistoryTest);

TEST_P(StoreHistoryTest, JobsAreFoundByWordsOfTheirPromptsNameModelOwnerAndState) {
  Create("job-a", "Potions", "tiny-sdxl", 1000, {"red potion bottle", "blue potion, glowing"}, "alice");
  Create("job-b", "monsters", "sdxl-base", 5000, {"green slime monster", "bat with wings"}, "bob");
  Create("job-c", "50% off_sale", "tiny-sdxl", 9000, {"shop sign"});
  EXPECT_EQ(Search("slime"), Ids({"job-b"}));          // a prompt of the second entry's items
  EXPECT_EQ(Search("GLOWING"), Ids({"job-a"}));        // any case
  EXPECT_EQ(Search("potion"), Ids({"job-a"}));         // name and prompts
  EXPECT_EQ(Search("green wings"), Ids({"job-b"}));    // every word, in any of the prompts
  EXPECT_EQ(Search("green potion"), Ids{});
  EXPECT_EQ(Search("sdxl-base"), Ids({"job-b"}));      // the model
  EXPECT_EQ(Search("alice"), Ids({"job-a"}));          // the owner
  EXPECT_EQ(Search("job-c"), Ids({"job-c"}));          // the start of the id
  EXPECT_EQ(Search("b-c"), Ids{});                      // ids are not searched inside
  EXPECT_EQ(Search(""), Ids({"job-c", "job-b", "job-a"}));
  // A word naming a state matches the jobs in it (all three are queued).
  EXPECT_EQ(Search("queued bat"), Ids({"job-b"}));
  EXPECT_EQ(Search("done bat"), Ids{});
  // LIKE's wildcards are plain characters in a word.
  EXPECT_EQ(Search("%"), Ids({"job-c"}));
  EXPECT_EQ(Search("f_s"), Ids({"job-c"}));
  EXPECT_EQ(Search("n_s"), Ids{});
  EXPECT_EQ(Search("'; DROP TABLE jobs; --"), Ids{});
  // Dates: from inclusive, until exclusive; with the owner of a submitter's listing.
  JobQuery dated;
  dated.created_from_ms = 5000;
  dated.created_until_ms = 9000;
  EXPECT_EQ(Find(dated), std::make_pair(Ids({"job-b"}), int64_t{1}));
  JobQuery owned;
  owned.owner = "alice";
  owned.text = "potion";
  EXPECT_EQ(Find(owned), std::make_pair(Ids({"job-a"}), int64_t{1}));
  owned.owner = "bob";
  EXPECT_EQ(Find(owned).second, 0);
  // A job loaded in chunks is found by the prompts the submission gave it.
  JobRecord loading;
  loading.id = "job-d";
  loading.name = "chunks";
  loading.model = "tiny-sdxl";
  loading.prompts = {"golden key"};
  bool dedup = false;
  ASSERT_TRUE(store_->BeginJob(loading, &dedup).ok());
  EXPECT_EQ(Search("golden"), Ids{});  // loading: nobody sees it yet
  ASSERT_TRUE(store_->QueueJob("job-d").ok());
  EXPECT_EQ(Search("golden"), Ids({"job-d"}));
}

TEST_P(StoreHistoryTest, PagesOverThousandsOfJobsComeNewestFirstWithTheirTotal) {
  // 3000 jobs in one statement: every third of model sdxl-base, one a second from t=1 s.
  const std::string columns = "INSERT INTO jobs(id, name, model, priority, state, created_ms, search_text) ";
  const std::string values =
      "SELECT 'job-' || i, 'batch ' || i, CASE WHEN i % 3 = 0 THEN 'sdxl-base' ELSE 'tiny-sdxl' END, 0, 1, "
      "i * 1000, 'job-' || i || '-batch ' || i || '-' || CASE WHEN i % 3 = 0 THEN 'sdxl-base' ELSE 'tiny-sdxl' END ";
  RunSql("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000) " + columns + values +
             "FROM n",
         columns + values + "FROM generate_series(1, 3000) AS n(i)");
  JobQuery query;
  query.limit = 50;
  std::set<std::string> seen;
  for (query.offset = 0; query.offset < 3000; query.offset += 50) {
    auto [ids, total] = Find(query);
    ASSERT_EQ(total, 3000);
    ASSERT_EQ(ids.size(), 50u);
    EXPECT_EQ(ids.front(), "job-" + std::to_string(3000 - query.offset));  // newest first
    seen.insert(ids.begin(), ids.end());
  }
  EXPECT_EQ(seen.size(), 3000u);  // no job twice, none left out
  query.offset = 3000;
  EXPECT_EQ(Find(query), std::make_pair(Ids{}, int64_t{3000}));  // past the end: an empty page
  // A search, a page at a time: 1000 jobs of sdxl-base, the last page holding the oldest.
  query.text = "SDXL-BASE";
  query.offset = 950;
  auto [last, total] = Find(query);
  EXPECT_EQ(total, 1000);
  ASSERT_EQ(last.size(), 50u);
  EXPECT_EQ(last.back(), "job-3");
  // With dates: jobs 1001 to 2000 (seconds), of which a third are sdxl-base.
  query.created_from_ms = 1001 * 1000;
  query.created_until_ms = 2001 * 1000;
  query.offset = 0;
  EXPECT_EQ(Find(query).second, 333);
}

TEST_P(StoreHistoryTest, JobsOfAStoreMadeBeforeTheSearchAreFoundByTheirPromptsAfterItOpens) {
  Create("job-old", "potions", "tiny-sdxl", 1000, {"Red Potion bottle", "mana flask"});
  // The store as a coordinator without the search made it: no search_text column.
  RunSql("ALTER TABLE jobs DROP COLUMN search_text", "ALTER TABLE jobs DROP COLUMN search_text");
  EXPECT_EQ(Search("flask"), Ids({"job-old"}));
  EXPECT_EQ(Search("red potion"), Ids({"job-old"}));
  // And one whose search text a coordinator without the search left empty.
  RunSql("UPDATE jobs SET search_text = ''", "UPDATE jobs SET search_text = ''");
  EXPECT_EQ(Search("mana"), Ids({"job-old"}));
}

}  // namespace
}  // namespace spriteforge::coordinator
