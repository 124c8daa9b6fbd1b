// The worker session's parts on their own, without a coordinator or an engine: the send
// queue's order, the batches by stage, the reader's answers, the packager and the heartbeat.
// The whole session against a real coordinator is tests/system/worker_pipeline_test.cc.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "worker/batch_runner.h"
#include "worker/session/batch_stages.h"
#include "worker/session/heartbeat.h"
#include "worker/session/packager.h"
#include "worker/session/send_queue.h"
#include "worker/session/stream_reader.h"

namespace spriteforge::worker {
namespace {

using std::chrono::milliseconds;
using Ids = std::vector<std::string>;

// Stands in for the stream: records what is written; can hold the first write until opened.
class Wire {
 public:
  bool Write(const v1::WorkerMessage& message) {
    std::unique_lock<std::mutex> lock(mu_);
    written_.push_back(message);
    changed_.notify_all();
    changed_.wait(lock, [&] { return open_; });
    return !broken_;
  }
  SendQueue::Write Writer() {
    return [this](const v1::WorkerMessage& m) { return Write(m); };
  }
  void Hold() { open_ = false; }
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    changed_.notify_all();
  }
  void Break() { broken_ = true; }
  // Waits (at most 5 s) until `count` messages were written.
  bool AwaitWritten(size_t count) {
    std::unique_lock<std::mutex> lock(mu_);
    return changed_.wait_for(lock, std::chrono::seconds(5), [&] { return written_.size() >= count; });
  }
  std::vector<v1::WorkerMessage> written() {
    std::lock_guard<std::mutex> lock(mu_);
    return written_;
  }

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  std::vector<v1::WorkerMessage> written_;
  bool open_ = true;
  bool broken_ = false;
};

v1::WorkerMessage Step(const std::string& batch, int step) {
  v1::WorkerMessage m;
  m.mutable_progress()->set_batch_id(batch);
  m.mutable_progress()->set_step(step);
  return m;
}
v1::WorkerMessage Preview(const std::string& batch, int step) {
  v1::WorkerMessage m;
  m.mutable_preview()->set_batch_id(batch);
  m.mutable_preview()->set_step(step);
  return m;
}
v1::WorkerMessage Done(const std::string& batch) {
  v1::WorkerMessage m;
  m.mutable_rendered()->set_batch_id(batch);
  return m;
}
// "kind:batch:step", to compare what went out at a glance.
std::string Describe(const v1::WorkerMessage& m) {
  if (m.has_progress()) return "step:" + m.progress().batch_id() + ":" + std::to_string(m.progress().step());
  if (m.has_preview()) return "preview:" + m.preview().batch_id() + ":" + std::to_string(m.preview().step());
  if (m.has_rendered()) return "rendered:" + m.rendered().batch_id();
  if (m.has_result()) return "result:" + m.result().batch_id();
  if (m.has_failure()) return "failure:" + m.failure().batch_id();
  if (m.has_heartbeat()) return "heartbeat";
  return "other";
}
Ids Described(const std::vector<v1::WorkerMessage>& messages) {
  Ids out;
  for (const v1::WorkerMessage& m : messages) out.push_back(Describe(m));
  return out;
}

v1::Assignment Batch(const std::string& id, int images = 1) {
  v1::Assignment a;
  a.set_batch_id(id);
  a.set_model("m");
  for (int i = 0; i < images; ++i) {
    v1::AssignedItem* item = a.add_items();
    item->set_job_id("job-" + id);
    item->set_index(i);
  }
  return a;
}
RenderedBatch RenderedOf(const v1::Assignment& a) {
  RenderedBatch out{a, {}};
  out.rendered.ok = true;
  for (int i = 0; i < a.items_size(); ++i) {
    engine::Image image;
    image.width = image.height = 8;
    image.rgb.assign(8 * 8 * 3, 7);
    out.rendered.batch.images.push_back(std::move(image));
  }
  return out;
}

TEST(SendQueueTest, MessagesGoOutInTheOrderPosted) {
  Wire wire;
  {
    SendQueue send(wire.Writer());
    send.Post(Done("a"));
    send.Post(Step("b", 1));
    send.Post(Done("b"));
    send.Post(Preview("c", 1));
  }
  EXPECT_EQ(Described(wire.written()), (Ids{"rendered:a", "step:b:1", "rendered:b", "preview:c:1"}));
}

TEST(SendQueueTest, ALaterStepOrPreviewOfABatchReplacesTheOneStillWaitingInItsPlace) {
  Wire wire;
  wire.Hold();
  SendQueue send(wire.Writer());
  send.Post(Done("x"));  // taken at once and held on the wire, so the rest waits
  ASSERT_TRUE(wire.AwaitWritten(1));
  send.Post(Step("a", 1));
  send.Post(Step("b", 1));
  send.Post(Preview("a", 1));
  send.Post(Step("a", 2));
  send.Post(Preview("a", 2));
  send.Post(Done("a"));
  wire.Open();
  send.Close();
  EXPECT_EQ(Described(wire.written()), (Ids{"rendered:x", "step:a:2", "step:b:1", "preview:a:2", "rendered:a"}));
}

TEST(SendQueueTest, AfterAFailedWriteTheRestIsNotWrittenAndCloseReturns) {
  Wire wire;
  wire.Break();
  SendQueue send(wire.Writer());
  send.Post(Done("a"));
  ASSERT_TRUE(wire.AwaitWritten(1));
  send.Post(Done("b"));
  send.Post(Done("c"));
  send.Close();
  EXPECT_EQ(Described(wire.written()), (Ids{"rendered:a"}));
}

TEST(SendQueueTest, WhatIsPostedAfterCloseIsDropped) {
  Wire wire;
  SendQueue send(wire.Writer());
  send.Post(Done("a"));
  send.Close();
  send.Post(Done("b"));
  EXPECT_EQ(Described(wire.written()), (Ids{"rendered:a"}));
}

TEST(BatchStagesTest, ACancelFlagsTheRenderingBatchAndDropsItsQueuedCopies) {
  BatchStages stages(2);
  stages.Queue(Batch("a"));
  stages.Queue(Batch("b"));
  ASSERT_EQ(stages.StartRendering()->batch_id(), "a");
  EXPECT_FALSE(stages.cancel_rendering());

  const CancelOutcome rendering = stages.Cancel("a");
  EXPECT_TRUE(rendering.was_rendering);
  EXPECT_EQ(rendering.dropped_queued, 0);
  EXPECT_TRUE(stages.cancel_rendering());

  const CancelOutcome queued = stages.Cancel("b");
  EXPECT_FALSE(queued.was_rendering);
  EXPECT_EQ(queued.dropped_queued, 1);
  EXPECT_EQ(*stages.AwaitBeat(milliseconds(0)), (Ids{"a"}));

  // The next batch starts with the flag down.
  stages.FinishRendering(std::nullopt);
  stages.Queue(Batch("c"));
  ASSERT_EQ(stages.StartRendering()->batch_id(), "c");
  EXPECT_FALSE(stages.cancel_rendering());
  EXPECT_EQ(stages.Cancel("unknown").dropped_queued, 0);
}

TEST(BatchStagesTest, TheRendererTakesTheNextBatchOnlyWhileThePackagerHasRoom) {
  BatchStages stages(2);
  for (const char* id : {"a", "b"}) {
    stages.Queue(Batch(id));
    stages.FinishRendering(RenderedOf(*stages.StartRendering()));
  }
  stages.Queue(Batch("c"));
  auto next = std::async(std::launch::async, [&] { return stages.StartRendering(); });
  EXPECT_EQ(next.wait_for(milliseconds(30)), std::future_status::timeout);
  EXPECT_EQ(*stages.AwaitBeat(milliseconds(0)), (Ids{"c", "a", "b"}));  // c is still queued

  ASSERT_EQ(stages.StartPackaging()->assignment.batch_id(), "a");
  ASSERT_EQ(next.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_EQ(next.get()->batch_id(), "c");
}

TEST(BatchStagesTest, AHeartbeatListsEveryBatchHeldOnceWhateverItsStage) {
  BatchStages stages(2);
  for (const char* id : {"packaging", "waiting", "rendering", "queued"}) stages.Queue(Batch(id));
  stages.FinishRendering(RenderedOf(*stages.StartRendering()));
  stages.FinishRendering(RenderedOf(*stages.StartRendering()));
  ASSERT_EQ(stages.StartPackaging()->assignment.batch_id(), "packaging");
  ASSERT_EQ(stages.StartRendering()->batch_id(), "rendering");
  EXPECT_EQ(*stages.AwaitBeat(milliseconds(0)), (Ids{"rendering", "queued", "waiting", "packaging"}));

  // A failed render goes nowhere; a packaged batch is no longer held.
  stages.FinishRendering(std::nullopt);
  stages.FinishPackaging();
  EXPECT_EQ(*stages.AwaitBeat(milliseconds(0)), (Ids{"queued", "waiting"}));
}

TEST(BatchStagesTest, EndingStopsTheRenderDropsTheQueueAndReleasesEveryWaiter) {
  BatchStages stages(2);
  auto renderer = std::async(std::launch::async, [&] { return stages.StartRendering(); });
  auto packager = std::async(std::launch::async, [&] { return stages.StartPackaging(); });
  auto heartbeat = std::async(std::launch::async, [&] { return stages.AwaitBeat(std::chrono::hours(1)); });
  stages.End();
  ASSERT_EQ(renderer.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  ASSERT_EQ(packager.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  ASSERT_EQ(heartbeat.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_FALSE(renderer.get().has_value());
  EXPECT_FALSE(packager.get().has_value());
  EXPECT_FALSE(heartbeat.get().has_value());
  EXPECT_TRUE(stages.cancel_rendering());

  stages.Queue(Batch("late"));
  EXPECT_FALSE(stages.StartRendering().has_value());
}

TEST(StreamReaderTest, AssignmentsQueueAndACancelOfAQueuedOneIsAnsweredAtOnce) {
  Wire wire;
  BatchStages stages(2);
  std::string registered_as;
  {
    SendQueue send(wire.Writer());
    StreamReader reader(&stages, &send, [&](const v1::Registered& r) { registered_as = r.worker_id(); });
    std::vector<v1::CoordinatorMessage> incoming(4);
    incoming[0].mutable_registered()->set_worker_id("gpu1-cuda0");
    *incoming[1].mutable_assignment() = Batch("a");
    *incoming[2].mutable_assignment() = Batch("b");
    incoming[3].mutable_cancel()->set_batch_id("a");
    size_t next = 0;
    reader.ReadUntilEnd([&](v1::CoordinatorMessage* m) {
      if (next == incoming.size()) return false;
      *m = incoming[next++];
      return true;
    });
  }
  EXPECT_EQ(registered_as, "gpu1-cuda0");
  EXPECT_EQ(*stages.AwaitBeat(milliseconds(0)), (Ids{"b"}));
  const auto written = wire.written();
  ASSERT_EQ(written.size(), 1u);
  EXPECT_EQ(written[0].failure().batch_id(), "a");
  EXPECT_EQ(written[0].failure().reason(), v1::FAILURE_CANCELLED);
  EXPECT_EQ(written[0].failure().message(), "cancelled before it started");
}

v1::MemoryReport SomeMemory() {
  v1::MemoryReport m;
  m.set_budget_bytes(42);
  return m;
}

TEST(PackagerTest, ResultsGoOutInTheOrderRenderedAndAnEncodingFailureAsAFailureWithTheMemory) {
  const ImageEncoder encoder = [](const RasterImage& image, const PngText&) -> absl::StatusOr<std::string> {
    if (image.width == 0) return absl::InternalError("cannot encode");
    return std::string("png");
  };
  const BatchRunner runner(nullptr, "m", encoder);
  Wire wire;
  BatchStages stages(2);
  {
    SendQueue send(wire.Writer());
    Packager packager(&runner, &stages, &send, SomeMemory, 2);
    RenderedBatch broken = RenderedOf(Batch("b"));
    broken.rendered.batch.images[0].width = 0;
    stages.FinishRendering(RenderedOf(Batch("a", 3)));
    stages.FinishRendering(std::move(broken));
    ASSERT_TRUE(wire.AwaitWritten(2));
    stages.End();
  }
  const auto written = wire.written();
  ASSERT_EQ(Described(written), (Ids{"result:a", "failure:b"}));
  ASSERT_EQ(written[0].result().items_size(), 3);
  EXPECT_EQ(written[0].result().items(2).png(), "png");
  EXPECT_EQ(written[1].failure().memory().budget_bytes(), 42u);
}

TEST(HeartbeatTest, ItListsTheBatchesHeldWithTheMemoryAndAfterAStopHangsUpInstead) {
  Wire wire;
  BatchStages stages(2);
  stages.Queue(Batch("a"));
  std::atomic<bool> stop{false};
  std::promise<void> hung_up;
  SendQueue send(wire.Writer());
  Heartbeat heartbeat(&stages, &send, SomeMemory, stop, [&] {
    stop = false;  // once is enough here
    hung_up.set_value();
  });
  heartbeat.SetInterval(1);  // taken as 100 ms, the shortest
  ASSERT_TRUE(wire.AwaitWritten(1));
  const v1::WorkerMessage beat = wire.written()[0];
  ASSERT_TRUE(beat.has_heartbeat());
  EXPECT_EQ(Ids(beat.heartbeat().running_batches().begin(), beat.heartbeat().running_batches().end()), (Ids{"a"}));
  EXPECT_EQ(beat.heartbeat().memory().budget_bytes(), 42u);

  stop = true;
  EXPECT_EQ(hung_up.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
  stages.End();
}

}  // namespace
}  // namespace spriteforge::worker
