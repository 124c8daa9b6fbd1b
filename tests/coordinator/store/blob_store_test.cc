// Uploaded files on their own budget: the folder's total and each owner's quota refuse an
// upload before it is written, collection deletes only blobs no unfinished job names once
// their grace is over, and a stalled upload is expired with its partial file.
#include "coordinator/store/blob_store.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>

namespace spriteforge::coordinator {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kHour = 3600000;

std::string FreshDir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("blob_store_" + name);
  fs::remove_all(dir);
  return dir.string();
}

// Stores `bytes` as an image for `owner`; the blob's hash, or the refusal.
absl::StatusOr<std::string> Put(BlobStore& blobs, const std::string& bytes, const std::string& owner = "",
                                uint64_t quota = 0) {
  auto upload = blobs.Begin(ManifestFileKind::kImage, bytes.size(), owner, quota);
  if (!upload.ok()) return upload.status();
  if (auto s = (*upload)->Append(bytes); !s.ok()) return s;
  auto ref = (*upload)->Finish();
  if (!ref.ok()) return ref.status();
  return ref->sha256;
}

int FilesIn(const fs::path& dir) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir)) n += e.is_regular_file() ? 1 : 0;
  return n;
}

void MakeOld(BlobStore& blobs, const std::string& sha256, int64_t age_ms) {
  fs::last_write_time(fs::path(blobs.dir()) / sha256,
                      fs::file_time_type::clock::now() - std::chrono::milliseconds(age_ms));
}

TEST(BlobCollectionTest, OnlyUnnamedBlobsPastTheirGraceAreChosen) {
  const int64_t now = 10 * kHour;
  const std::vector<BlobEntry> blobs = {
      {"named-old", 10, now - 3 * kHour},
      {"unnamed-old", 10, now - 3 * kHour},
      {"unnamed-young", 10, now - kHour / 2},
      {"unnamed-at-grace", 10, now - kHour},
  };
  EXPECT_EQ(BlobsToCollect(blobs, {"named-old"}, now, kHour), std::vector<std::string>{"unnamed-old"});
  EXPECT_TRUE(BlobsToCollect(blobs, {"named-old", "unnamed-old"}, now, 4 * kHour).empty());
}

TEST(BlobStoreTest, AnUploadBeyondTheFoldersBudgetIsRefusedBeforeItIsWritten) {
  auto blobs = BlobStore::Open(FreshDir("budget"), {}, BlobBudget{10000});
  ASSERT_TRUE(blobs.ok()) << blobs.status();
  ASSERT_TRUE(Put(**blobs, std::string(6000, 'a')).ok());
  auto refused = (*blobs)->Begin(ManifestFileKind::kImage, 6000);
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(refused.status().message().find("--blob-max-gb"), std::string::npos) << refused.status();
  EXPECT_EQ(FilesIn(fs::path((*blobs)->dir()) / "incoming"), 0);
  EXPECT_EQ((*blobs)->total_bytes(), 6000u);
  // An upload in progress holds its announced size until it ends.
  auto open = (*blobs)->Begin(ManifestFileKind::kImage, 4000);
  ASSERT_TRUE(open.ok()) << open.status();
  EXPECT_EQ((*blobs)->Begin(ManifestFileKind::kImage, 1).status().code(), absl::StatusCode::kResourceExhausted);
  open->reset();
  EXPECT_TRUE((*blobs)->Begin(ManifestFileKind::kImage, 4000).ok());
}

TEST(BlobStoreTest, AnOwnersQuotaCountsWhatItStoredAndSurvivesARestart) {
  const std::string dir = FreshDir("quota");
  {
    auto blobs = BlobStore::Open(dir, {});
    ASSERT_TRUE(blobs.ok()) << blobs.status();
    ASSERT_TRUE(Put(**blobs, std::string(6000, 'a'), "alice", 10000).ok());
    EXPECT_TRUE(Put(**blobs, std::string(6000, 'b'), "bob", 10000).ok());  // another owner's quota
    // The same bytes again cost nothing more.
    EXPECT_TRUE(Put(**blobs, std::string(6000, 'a'), "alice", 10000).ok());
    EXPECT_EQ((*blobs)->owner_bytes("alice"), 6000u);
  }
  auto reopened = BlobStore::Open(dir, {});
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ((*reopened)->owner_bytes("alice"), 6000u);
  auto refused = Put(**reopened, std::string(6000, 'c'), "alice", 10000);
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(refused.status().message().find("'alice' holds 6000 bytes"), std::string::npos) << refused.status();
  EXPECT_EQ(FilesIn(fs::path(dir) / "incoming"), 0);
  // Uploads in progress count too, so many at once cannot pass the quota before any ends.
  auto first = (*reopened)->Begin(ManifestFileKind::kImage, 8000, "carol", 10000);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ((*reopened)->Begin(ManifestFileKind::kImage, 4000, "carol", 10000).status().code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(BlobStoreTest, CollectionDeletesAnUnnamedOldBlobAndKeepsANamedAndAYoungOne) {
  auto blobs = BlobStore::Open(FreshDir("collect"), {});
  ASSERT_TRUE(blobs.ok()) << blobs.status();
  auto named = Put(**blobs, "named", "alice"), old = Put(**blobs, "old", "alice"), young = Put(**blobs, "young");
  ASSERT_TRUE(named.ok() && old.ok() && young.ok());
  MakeOld(**blobs, *named, 2 * kHour);
  MakeOld(**blobs, *old, 2 * kHour);
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_EQ((*blobs)->Collect({*named}, now, kHour), 1);
  EXPECT_TRUE((*blobs)->Path(*named).ok());
  EXPECT_TRUE((*blobs)->Path(*young).ok());
  EXPECT_EQ((*blobs)->Path(*old).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*blobs)->owner_bytes("alice"), 5u);  // "named" is still alice's
  // A job naming a blob restarts its grace.
  MakeOld(**blobs, *young, 2 * kHour);
  ASSERT_TRUE((*blobs)->Touch(*young).ok());
  EXPECT_EQ((*blobs)->Collect({}, now, kHour), 1);  // the named one, no longer named
  EXPECT_TRUE((*blobs)->Path(*young).ok());
}

TEST(BlobStoreTest, AStalledUploadIsExpiredAndItsPartialFileRemoved) {
  auto blobs = BlobStore::Open(FreshDir("stall"), {}, BlobBudget{10000});
  ASSERT_TRUE(blobs.ok()) << blobs.status();
  const fs::path incoming = fs::path((*blobs)->dir()) / "incoming";
  auto upload = (*blobs)->Begin(ManifestFileKind::kImage, 8000);
  ASSERT_TRUE(upload.ok()) << upload.status();
  int cancelled = 0;
  (*upload)->OnExpired([&] { ++cancelled; });
  ASSERT_TRUE((*upload)->Append(std::string(1000, 'x')).ok());
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now().time_since_epoch()).count();
  EXPECT_EQ((*blobs)->ExpireStalled(now, 60000), 0);  // active a moment ago
  EXPECT_EQ(FilesIn(incoming), 1);
  EXPECT_EQ((*blobs)->ExpireStalled(now + 60001, 60000), 1);
  EXPECT_EQ(cancelled, 1);
  EXPECT_EQ(FilesIn(incoming), 0);
  EXPECT_EQ((*blobs)->total_bytes(), 0u);  // its reservation is free for others
  EXPECT_EQ((*upload)->Append("late").code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ((*upload)->Finish().status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST(BlobStoreTest, PartialFilesOfACrashedProcessAreRemovedAtStart) {
  const std::string dir = FreshDir("crash");
  fs::create_directories(fs::path(dir) / "incoming");
  std::ofstream(fs::path(dir) / "incoming" / "4242-0") << "half an upload";
  auto blobs = BlobStore::Open(dir, {});
  ASSERT_TRUE(blobs.ok()) << blobs.status();
  EXPECT_EQ(FilesIn(fs::path(dir) / "incoming"), 0);
}

}  // namespace
}  // namespace spriteforge::coordinator
