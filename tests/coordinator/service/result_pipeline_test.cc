// The result pipeline on real files: a result's images are checked and staged side by side
// on the checker threads, yet the group handed to the commit lists them in the result's
// order, with a broken image reported and an image of another batch left out, exactly as
// the pipeline without threads (in the caller) does; each phase is timed for /metrics.
#include "coordinator/core/result_pipeline.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <mutex>

#include "common/png.h"

namespace spriteforge::coordinator {
namespace {

constexpr int kSide = 64;
constexpr int kImages = 12;

std::string Png(int shade) {
  RasterImage image;
  image.width = image.height = kSide;
  image.pixels.assign(static_cast<size_t>(kSide) * kSide * 3, static_cast<uint8_t>(shade));
  return *EncodePng(image);
}

// A batch of kImages where image 3 is not a PNG and image 5 answers with another seed
// (not the item that runs under the batch).
ResultWork Work() {
  ResultWork work;
  work.batch_id = "b1";
  work.worker_id = "w1";
  work.batch_size = kImages;
  work.model = "m";
  work.result.set_batch_id("b1");
  for (int i = 0; i < kImages; ++i) {
    ItemRecord item;
    item.job_id = "job-1";
    item.index = i;
    item.image.set_seed(100 + i);
    item.sampling.set_width(kSide);
    item.sampling.set_height(kSide);
    work.items.push_back(item);
    v1::ItemResult* r = work.result.add_items();
    r->set_job_id("job-1");
    r->set_index(i);
    r->set_seed(i == 5 ? 7 : 100 + i);
    r->set_png(i == 3 ? std::string("not a png") : Png(10 * i));
  }
  return work;
}

std::vector<int> WrittenIndices(const std::vector<StagedResult>& group) {
  std::vector<int> out;
  for (const StagedResult& r : group) {
    for (const StagedItem& w : r.written) out.push_back(w.item.index);
  }
  return out;
}

class ResultPipelineTest : public ::testing::TestWithParam<int> {};

TEST_P(ResultPipelineTest, AResultsImagesAreStagedInItsOrderAndCommittedTogether) {
  const std::string dir = ::testing::TempDir() + "/result-pipeline-" + std::to_string(GetParam());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::mutex mu;
  std::vector<StagedResult> committed;
  std::vector<std::string> phases;
  {
    ResultPipeline pipeline(
        dir, /*checkers=*/GetParam(), /*max_waiting_bytes=*/1 << 20,
        [&](std::vector<StagedResult>& group) {
          std::lock_guard<std::mutex> lock(mu);
          for (StagedResult& r : group) committed.push_back(std::move(r));
        },
        [&](const std::string& phase, double seconds) {
          std::lock_guard<std::mutex> lock(mu);
          EXPECT_GE(seconds, 0);
          phases.push_back(phase);
        });
    pipeline.Submit(Work());
  }  // the destructor records what the pipeline holds
  EXPECT_EQ(phases, (std::vector<std::string>{"check", "sync", "record"}));
  ASSERT_EQ(committed.size(), 1u);
  EXPECT_EQ(WrittenIndices(committed), (std::vector<int>{0, 1, 2, 4, 6, 7, 8, 9, 10, 11}));
  EXPECT_NE(committed[0].invalid_error.find("not a PNG"), std::string::npos) << committed[0].invalid_error;
  EXPECT_TRUE(committed[0].storage_error.empty());

  // Every staged image is whole: placing them puts the same bytes under the final names.
  std::vector<bool> accept(committed[0].written.size(), true);
  auto placed = PlaceResultFiles(committed)(accept, std::chrono::steady_clock::now() + std::chrono::minutes(1));
  EXPECT_EQ(placed, accept);
  for (const StagedItem& w : committed[0].written) {
    auto image = ReadPngFile(w.staged.files.image_path);
    ASSERT_TRUE(image.ok()) << w.staged.files.image_path << ": " << image.status();
    EXPECT_EQ(image->pixels[0], 10 * w.item.index);
  }
}

INSTANTIATE_TEST_SUITE_P(InTheCallerOrOnCheckerThreads, ResultPipelineTest, ::testing::Values(0, 4));

}  // namespace
}  // namespace spriteforge::coordinator
