// The worker's cache of uploaded files: partial files of fetches cut short go when a cache
// opens (unless their process still runs), and beyond its bound the least recently used
// files go first, never one the current batch uses.
#include "worker/blob_cache.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "common/sha256.h"

namespace spriteforge::worker {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kMinute = 60000;

std::string FreshDir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("blob_cache_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

// Puts `bytes` in the cache folder under their hash, last used `age` ago.
std::string Cached(const std::string& dir, const std::string& bytes, std::chrono::minutes age) {
  const std::string sha = Sha256Hex(bytes);
  std::ofstream(fs::path(dir) / sha, std::ios::binary) << bytes;
  fs::last_write_time(fs::path(dir) / sha, fs::file_time_type::clock::now() - age);
  return sha;
}

// Serves any bytes of `files` by their hash.
BlobCache::Fetch From(std::vector<std::string> files) {
  return [files](const std::string& sha256, const std::string& dest) {
    for (const std::string& bytes : files) {
      if (Sha256Hex(bytes) == sha256) {
        std::ofstream(dest, std::ios::binary) << bytes;
        return absl::OkStatus();
      }
    }
    return absl::NotFoundError(sha256);
  };
}

TEST(BlobCacheEvictionTest, TheLeastRecentlyUsedGoFirstButNeverOneInUseOrJustUsed) {
  const int64_t now = 100 * kMinute;
  const std::vector<CachedFile> files = {
      {"newest", 400, now - 5 * kMinute},
      {"oldest-in-use", 400, now - 50 * kMinute},
      {"old", 400, now - 40 * kMinute},
      {"older", 400, now - 45 * kMinute},
      {"just-used", 400, now - 1000},
  };
  // 2000 bytes held, 1200 allowed: the two oldest not in use are enough.
  EXPECT_EQ(FilesToEvict(files, 1200, {"oldest-in-use"}, now, kMinute), (std::vector<std::string>{"older", "old"}));
  EXPECT_TRUE(FilesToEvict(files, 2000, {}, now, kMinute).empty());
  // Whatever is not protected goes when the bound is tiny; the rest stays over it.
  EXPECT_EQ(FilesToEvict(files, 1, {"oldest-in-use"}, now, kMinute),
            (std::vector<std::string>{"older", "old", "newest"}));
}

TEST(BlobCacheEvictionTest, APartialFileIsAbandonedWhenItsProcessIsGone) {
  const std::string sha = Sha256Hex("lora");
  auto running = [](long pid) { return pid == 77; };
  EXPECT_TRUE(IsAbandonedPart(sha + ".part-12", running));
  EXPECT_FALSE(IsAbandonedPart(sha + ".part-77", running));
  EXPECT_FALSE(IsAbandonedPart(sha, running));
  EXPECT_FALSE(IsAbandonedPart("notes.part-12", running));
  EXPECT_FALSE(IsAbandonedPart(sha + ".part-x", running));
}

TEST(BlobCacheTest, PartialFilesOfFetchesCutShortAreRemovedWhenTheCacheOpens) {
  const std::string dir = FreshDir("parts");
  const std::string sha = Cached(dir, "a whole file", std::chrono::minutes(0));
  const fs::path dead = fs::path(dir) / (sha + ".part-999999999");       // no such process
  const fs::path ours = fs::path(dir) / (sha + ".part-" + std::to_string(getpid()));  // a session before
  const fs::path live = fs::path(dir) / (sha + ".part-" + std::to_string(getppid()));  // another worker's
  for (const fs::path& p : {dead, ours, live}) std::ofstream(p) << "half";
  BlobCache cache(dir, From({}));
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_FALSE(fs::exists(ours));
  EXPECT_TRUE(fs::exists(live));
  EXPECT_TRUE(fs::exists(fs::path(dir) / sha));
}

TEST(BlobCacheTest, AFetchBeyondTheBoundEvictsTheLeastRecentlyUsedButNotTheBatchsFiles) {
  const std::string dir = FreshDir("bound");
  const std::string a(400, 'a'), b(400, 'b'), c(400, 'c');
  const std::string sha_a = Cached(dir, a, std::chrono::minutes(30));  // oldest, but this batch's
  const std::string sha_b = Cached(dir, b, std::chrono::minutes(20));
  BlobCache cache(dir, From({c}), 1000);
  EXPECT_TRUE(fs::exists(fs::path(dir) / sha_b));  // 800 bytes: within the bound
  cache.BeginBatch();
  ASSERT_TRUE(cache.Path(sha_a).ok());
  auto fetched = cache.Path(Sha256Hex(c));
  ASSERT_TRUE(fetched.ok()) << fetched.status();
  EXPECT_EQ(cache.fetches(), 1);
  EXPECT_TRUE(fs::exists(fs::path(dir) / sha_a));
  EXPECT_FALSE(fs::exists(fs::path(dir) / sha_b));
  EXPECT_TRUE(fs::exists(*fetched));
}

// A use leaves the file's modification time alone (the engine reloads a LoRA or ControlNet
// whose time changed: touching it reloaded uploaded ones for every batch) and still counts
// for eviction: the file used last stays though its time on disk is older.
TEST(BlobCacheTest, AUseKeepsTheFilesTimeAndStillCountsForEviction) {
  const std::string dir = FreshDir("use");
  const std::string a(400, 'a'), b(400, 'b'), c(400, 'c');
  const std::string sha_a = Cached(dir, a, std::chrono::minutes(30));
  const std::string sha_b = Cached(dir, b, std::chrono::minutes(20));
  const auto written = fs::last_write_time(fs::path(dir) / sha_a);
  BlobCache cache(dir, From({c}), 1000);
  ASSERT_TRUE(cache.Path(sha_a).ok());
  EXPECT_EQ(fs::last_write_time(fs::path(dir) / sha_a), written);
  cache.BeginBatch();  // a is no longer the batch's: only its use protects it
  ASSERT_TRUE(cache.Path(Sha256Hex(c)).ok());
  EXPECT_TRUE(fs::exists(fs::path(dir) / sha_a));
  EXPECT_FALSE(fs::exists(fs::path(dir) / sha_b));
}

}  // namespace
}  // namespace spriteforge::worker
