// The coordinator against hostile clients and workers, through its real entry points
// (Submit, Register, OnMessage): manifests that overflowed its stack, a registration that
// hung it, a second connection taking over a worker's id, results that are not images, and
// palette paths that read files on workers.
#include <climits>
#include <functional>
#include <thread>

#include "tests/coordinator/service/coordinator_fixture.h"

namespace spriteforge::coordinator {
namespace {

using testing::CoordinatorTest;
using testing::FakeChannel;

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

absl::Status SubmitText(Coordinator& core, const std::string& manifest, const std::string& model_override = "") {
  v1::SubmitJobRequest request;
  request.set_manifest(manifest);
  request.set_manifest_name("c.yaml");
  request.set_model_override(model_override);
  return core.Submit(request).status();
}

TEST_F(CoordinatorTest, ARecursiveAliasManifestIsRefusedAndServiceGoesOn) {
  auto s = SubmitText(*core_, "name: c\nmodel: tiny\npostprocess: &a {x: *a}\nitems: [{prompt: a}]\n");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "c.yaml:3: alias *a refers to a node that contains it");
  EXPECT_FALSE(Submit(1).empty());
}

TEST_F(CoordinatorTest, PalettePathsModelPathsAndBadOptionsAreRefusedAtSubmit) {
  const std::string head = "name: p\nmodel: tiny-sdxl\nitems: [{prompt: a}]\n";
  auto path = SubmitText(*core_, head + "postprocess: {palette: '/home/worker/.aws/credentials.hex'}\n");
  EXPECT_EQ(path.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(path.message()).rfind("c.yaml:4: postprocess.palette: palette paths are not allowed", 0), 0u)
      << path;
  EXPECT_TRUE(SubmitText(*core_, head + "postprocess: {palette: forest.hex}\n").ok());
  EXPECT_TRUE(SubmitText(*core_, head + "postprocess: {palette: ['#0f380f', '#9bbc0f'], pixelate: 32x32}\n").ok());
  auto option = SubmitText(*core_, head + "postprocess: {pixelate: huge}\n");
  EXPECT_EQ(std::string(option.message()).rfind("c.yaml:4: postprocess.pixelate: ", 0), 0u) << option;
  auto model = SubmitText(*core_, "name: p\nmodel: ../../etc/passwd\nitems: [{prompt: a}]\n");
  EXPECT_EQ(std::string(model.message()).rfind("c.yaml:2: model: must be", 0), 0u) << model;
  auto override_ = SubmitText(*core_, head, "../../etc/passwd");
  EXPECT_EQ(std::string(override_.message()).rfind("model override: must be", 0), 0u) << override_;
}

// Before: `palette: c64` was accepted, the job ended done with every item "done" and no
// sprite written (the error only in the sidecars).
TEST_F(CoordinatorTest, AnUnknownPaletteIsRefusedAtSubmitNamingFileLineAndField) {
  auto c64 = SubmitText(*core_, "name: p\nmodel: tiny-sdxl\nitems: [{prompt: a, count: 2}]\npostprocess:\n"
                                "  pixelate: 32x32\n  palette: c64\n");
  EXPECT_EQ(c64.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(c64.message()),
            "c.yaml:6: postprocess.palette: unknown palette \"c64\"; give pico8, gameboy, nes, a list of colours, "
            "or the file name of a palette in the worker's --palette-dir");
  v1::ListJobsRequest list;
  EXPECT_EQ(core_->ListJobs(list)->jobs_size(), 0);  // nothing was queued
  for (const char* bad : {"{dither: wobbly}", "{colors: 1}", "{background: flood, tolerance: 3}", "{sparkle: 1}"}) {
    auto s = SubmitText(*core_, std::string("name: p\nmodel: tiny-sdxl\nitems: [{prompt: a}]\npostprocess: ") + bad);
    EXPECT_EQ(std::string(s.message()).rfind("c.yaml:4: postprocess.", 0), 0u) << bad << ": " << s;
  }
}

// One registration with these numbers left the coordinator looping under its lock for good.
TEST_F(CoordinatorTest, AbsurdRegistrationNumbersAreRefusedAndSubmitStaysPrompt) {
  v1::Register reg = Registration("huge", INT_MAX);
  reg.mutable_memory()->set_budget_bytes(UINT64_MAX);
  auto refused = core_->Register(std::make_shared<FakeChannel>(), reg);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(refused.message(), "register.max_batch: 2147483647 is not in 1..256");
  reg.set_max_batch(256);
  EXPECT_EQ(core_->Register(std::make_shared<FakeChannel>(), reg).message(),
            "register.memory.budget_bytes: 18446744073709551615 is more than 1125899906842624");

  // The largest registration allowed still plans at once.
  reg.mutable_memory()->set_budget_bytes(1ull << 50);
  auto w = std::make_shared<FakeChannel>();
  ASSERT_TRUE(core_->Register(w, reg).ok());
  const auto start = std::chrono::steady_clock::now();
  Submit(1000);
  EXPECT_EQ(w->NextAssignment().items_size(), 256);
  EXPECT_LT(SecondsSince(start), 2.0);
}

TEST_F(CoordinatorTest, EveryRegistrationFieldIsChecked) {
  struct Case {
    std::function<void(v1::Register&)> spoil;
    std::string message;
  };
  const Case cases[] = {
      {[](v1::Register& r) { r.set_max_batch(0); }, "register.max_batch: 0 is not in 1..256"},
      {[](v1::Register& r) { r.set_prefetch(-1); }, "register.prefetch: -1 is not in 0..16"},
      {[](v1::Register& r) { r.set_worker_id("w\x1b[2J"); }, "register.worker_id: must be 1..128 characters"},
      {[](v1::Register& r) { r.set_worker_id(std::string(300, 'w')); }, "register.worker_id: must be"},
      {[](v1::Register& r) { r.set_device_name("gpu\x1b]0;x\x07"); }, "register.device_name: contains control"},
      {[](v1::Register& r) { r.set_version(std::string(200, 'v')); }, "register.version: longer than 128"},
      {[](v1::Register& r) { r.clear_models(); }, "register.models: a worker must advertise at least one model"},
      {[](v1::Register& r) { r.add_models("../../etc/passwd"); }, "register.models: \"../../etc/passwd\" must be"},
      {[](v1::Register& r) { for (int i = 0; i < 40; ++i) r.add_models("m" + std::to_string(i)); },
       "register.models: more than 32"},
      {[](v1::Register& r) { r.mutable_memory()->set_total_bytes(1000), r.mutable_memory()->set_free_bytes(2000); },
       "register.memory: free_bytes and budget_bytes must not exceed total_bytes"},
      {[](v1::Register& r) { r.mutable_memory()->set_weights_bytes(UINT64_MAX); },
       "register.memory.weights_bytes: 18446744073709551615 is more than"},
      {[](v1::Register& r) {
         auto* c = r.add_calibrations();
         c->set_batch(1), c->set_width(-5), c->set_height(64), c->set_peak_bytes(1);
       },
       "register.calibrations: -5x64 is not within 1..8192"},
      {[](v1::Register& r) {
         auto* c = r.add_calibrations();
         c->set_batch(100000), c->set_width(64), c->set_height(64);
       },
       "register.calibrations.batch: 100000 is not in 1..256"},
  };
  for (const Case& c : cases) {
    v1::Register reg = Registration("w1", 4);
    c.spoil(reg);
    auto s = core_->Register(std::make_shared<FakeChannel>(), reg);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_EQ(std::string(s.message()).rfind(c.message, 0), 0u) << s;
  }
}

TEST_F(CoordinatorTest, ASecondConnectionCannotTakeOverAConnectedWorkersId) {
  auto real = Connect("w1", 4);
  const std::string job = Submit(4);
  v1::Assignment a = real->NextAssignment();
  ASSERT_EQ(a.items_size(), 4);

  auto impostor = std::make_shared<FakeChannel>();
  auto refused = core_->Register(impostor, Registration("w1", 4));
  EXPECT_EQ(refused.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(refused.message(), "worker w1 is already connected");
  core_->OnMessage(impostor.get(), Result(a));  // not registered: ignored
  EXPECT_EQ(Job(job).job().counts().done(), 0);
  EXPECT_FALSE(real->WaitClosed(std::chrono::milliseconds(100))) << "the real worker keeps its stream";

  core_->OnMessage(real.get(), Result(a));
  EXPECT_EQ(Job(job).job().counts().done(), 4);
  // Once the real stream is gone, the id may connect again (a restarted worker).
  core_->OnDisconnect(real.get());
  EXPECT_TRUE(core_->Register(std::make_shared<FakeChannel>(), Registration("w1", 4)).ok());
}

TEST_F(CoordinatorTest, AWorkerSendingAbsurdHeartbeatsIsDropped) {
  auto w = Connect("w1", 4);
  v1::WorkerMessage beat;
  beat.mutable_heartbeat()->mutable_memory()->set_budget_bytes(UINT64_MAX);
  core_->OnMessage(w.get(), beat);
  ASSERT_TRUE(w->WaitClosed());
  EXPECT_EQ(w->close_reason(), "invalid message: heartbeat.memory.budget_bytes: 18446744073709551615 is more than "
                               "1125899906842624");
}

// Messages that are not progress on the batch the worker holds keep nothing: empty
// messages, a step repeated, steps and renders of a made-up batch, heartbeats. After one
// lease without a new step the worker is dropped and its item goes back to the queue.
TEST_F(CoordinatorTest, FakeProgressDoesNotKeepALease) {
  CoordinatorOptions options;
  options.lease_ms = 200;
  Start(options);
  auto w = Connect("w1", 4);
  const std::string job = Submit(1);
  const v1::Assignment a = w->NextAssignment();
  v1::WorkerMessage step;
  step.mutable_progress()->set_batch_id(a.batch_id());
  step.mutable_progress()->set_step(1);
  step.mutable_progress()->set_total_steps(4);
  v1::WorkerMessage made_up_step = step;
  made_up_step.mutable_progress()->set_batch_id("batch-made-up");
  made_up_step.mutable_progress()->set_step(2);
  v1::WorkerMessage made_up_render;
  made_up_render.mutable_rendered()->set_batch_id("batch-made-up");
  v1::WorkerMessage beat;
  beat.mutable_heartbeat()->mutable_memory()->set_budget_bytes(100'000'000'000ull);
  const auto start = std::chrono::steady_clock::now();
  while (!w->WaitClosed(std::chrono::milliseconds(20)) && std::chrono::steady_clock::now() - start < std::chrono::seconds(3)) {
    for (const v1::WorkerMessage& m : {step, made_up_step, made_up_render, beat, v1::WorkerMessage{}}) {
      core_->OnMessage(w.get(), m);
    }
    core_->Tick();
  }
  ASSERT_TRUE(w->WaitClosed(std::chrono::milliseconds(0))) << "fake progress kept the lease";
  EXPECT_NE(w->close_reason().find("no progress on batch " + a.batch_id()), std::string::npos) << w->close_reason();
  EXPECT_EQ(Job(job).items(0).state(), v1::ITEM_QUEUED);
}

// Bytes that start with the PNG signature, images of the wrong size, PNGs far larger than
// their pixels, and sprites for a job that asked for none: none is committed, each fails as
// INVALID_RESULT.
TEST_F(CoordinatorTest, ResultsThatAreNotTheItemsImageFailAsInvalidResult) {
  struct Case {
    std::function<void(v1::ItemResult&)> spoil;
    std::string message;
    bool postprocess = false;  // the job asks for sprites
  };
  const std::string signature = "\x89PNG\r\n\x1a\n";
  const Case cases[] = {
      {[&](v1::ItemResult& r) { r.set_png(signature + "<html><body>not an image</body></html>"); },
       "the render is not a PNG"},
      {[](v1::ItemResult& r) { r.set_png(*EncodePng({64, 64, 3, std::vector<uint8_t>(64 * 64 * 3)})); },
       "the render is 64x64, the item is 128x128"},
      {[](v1::ItemResult& r) { r.set_png(r.png() + std::string(1 << 20, 'x')); },
       "more than a 128x128 PNG can take"},
      {[](v1::ItemResult& r) { r.set_png(r.png().substr(0, r.png().size() / 2)); }, "the render does not decode"},
      {[](v1::ItemResult& r) { r.set_png(std::string(65 << 20, 'x')); }, "the render is 68157440 bytes; the limit is"},
      {[&](v1::ItemResult& r) { r.set_sprite_png(signature + "GIF89a"); }, "the sprite is not a PNG", true},
      {[](v1::ItemResult& r) { r.set_sprite_png(r.png()); },
       "a sprite for an item whose job has no postprocess section"},
  };
  CoordinatorOptions options;
  options.invalid_result_strikes = 100;  // this test is about the items, not the worker
  Start(options);
  auto w = Connect("w1", 1);
  for (const Case& c : cases) {
    v1::SubmitJobRequest request;
    request.set_manifest(std::string("name: t\nmodel: tiny-sdxl\ndefaults: {width: 128, height: 128, steps: 4}\n") +
                         (c.postprocess ? "postprocess: {palette: gameboy}\n" : "") + "items: [{prompt: potion}]\n");
    auto submitted = core_->Submit(request);
    ASSERT_TRUE(submitted.ok()) << submitted.status();
    const std::string job = submitted->job().id();
    v1::Assignment a = w->NextAssignment();
    v1::WorkerMessage bad = Result(a);
    c.spoil(*bad.mutable_result()->mutable_items(0));
    core_->OnMessage(w.get(), bad);
    const v1::Item item = Job(job).items(0);
    EXPECT_EQ(item.state(), v1::ITEM_RUNNING) << "retried at once: " << c.message;
    EXPECT_EQ(item.failure(), v1::FAILURE_INVALID_RESULT) << c.message;
    EXPECT_NE(item.failure_message().find(c.message), std::string::npos) << item.failure_message();
    EXPECT_FALSE(std::filesystem::exists(dir_ + "/out/" + job)) << "nothing written for " << c.message;
    core_->OnMessage(w.get(), Result(w->NextAssignment()));  // the retry, answered properly
    EXPECT_EQ(Job(job).job().state(), v1::JOB_DONE);
  }
}

TEST_F(CoordinatorTest, AWorkerThatKeepsSendingInvalidResultsIsQuarantined) {
  CoordinatorOptions options;
  options.max_attempts = 10;
  Start(options);
  auto bad = Connect("bad", 2);
  const std::string job = Submit(2);
  for (int batch = 0; batch < 3; ++batch) {
    v1::Assignment a = bad->NextAssignment();
    v1::WorkerMessage junk = Result(a);
    for (auto& r : *junk.mutable_result()->mutable_items()) r.set_png("\x89PNG\r\n\x1a\nstock image");
    core_->OnMessage(bad.get(), junk);
  }
  ASSERT_TRUE(bad->WaitClosed());
  EXPECT_EQ(bad->close_reason(), "quarantined for 600 s after 3 batches of invalid results");
  auto again = core_->Register(std::make_shared<FakeChannel>(), Registration("bad", 2));
  EXPECT_EQ(again.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(again.message(), "worker bad is quarantined for 600 more s after 3 batches of invalid results");

  auto good = Connect("good", 2);
  core_->OnMessage(good.get(), Result(good->NextAssignment()));
  const v1::GetJobResponse done = Job(job);
  EXPECT_EQ(done.job().state(), v1::JOB_DONE);
  for (const v1::Item& item : done.items()) EXPECT_EQ(item.worker_id(), "good");
}

TEST_F(CoordinatorTest, QuarantineHoldsTheCredentialNotOnlyTheWorkerId) {
  CoordinatorOptions options;
  options.max_attempts = 10;
  Start(options);
  auto bad = std::make_shared<FakeChannel>();
  ASSERT_TRUE(core_->Register(bad, Registration("bad", 1), "token gpu-7").ok());
  Submit(3);
  for (int batch = 0; batch < 3; ++batch) {
    v1::WorkerMessage junk = Result(bad->NextAssignment());
    junk.mutable_result()->mutable_items(0)->set_png("junk");
    core_->OnMessage(bad.get(), junk);
  }
  ASSERT_TRUE(bad->WaitClosed());
  // A new id with the same token is refused; another token is not.
  auto renamed = core_->Register(std::make_shared<FakeChannel>(), Registration("bad-2", 1), "token gpu-7");
  EXPECT_EQ(renamed.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(renamed.message(),
            "worker bad-2 refused: token gpu-7 is quarantined for 600 more s after 3 batches of invalid results");
  EXPECT_EQ(core_->Register(std::make_shared<FakeChannel>(), Registration("bad", 1), "token other").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(core_->Register(std::make_shared<FakeChannel>(), Registration("good", 1), "token other").ok());
}

TEST_F(CoordinatorTest, StrikesFollowTheCredentialAcrossWorkerIds) {
  CoordinatorOptions options;
  options.max_attempts = 10;
  Start(options);
  Submit(3);
  // Two invalid batches, then a reconnect under a new id: the third still quarantines.
  for (int batch = 0; batch < 3; ++batch) {
    auto channel = std::make_shared<FakeChannel>();
    ASSERT_TRUE(core_->Register(channel, Registration("bad-" + std::to_string(batch), 1), "host ipv4:10.0.0.9").ok());
    v1::WorkerMessage junk = Result(channel->NextAssignment());
    junk.mutable_result()->mutable_items(0)->set_png("junk");
    core_->OnMessage(channel.get(), junk);
    if (batch < 2) core_->OnDisconnect(channel.get());
    else EXPECT_TRUE(channel->WaitClosed());
  }
  EXPECT_EQ(core_->Register(std::make_shared<FakeChannel>(), Registration("bad-3", 1), "host ipv4:10.0.0.9").code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(CoordinatorTest, InvalidResultsAreRetriedOnAnotherWorkerBeforeTheyUseUpAttempts) {
  CoordinatorOptions options;
  options.max_attempts = 1;            // one honest failure would end the item
  options.invalid_result_strikes = 100;  // this test is about the items, not the worker
  Start(options);
  auto bad = Connect("a-bad", 1);  // planned first: workers are offered work in id order
  auto good = Connect("b-good", 1);
  const std::string job = Submit(1);
  v1::WorkerMessage junk = Result(bad->NextAssignment());
  junk.mutable_result()->mutable_items(0)->set_png("junk");
  core_->OnMessage(bad.get(), junk);
  EXPECT_EQ(Job(job).items(0).state(), v1::ITEM_RUNNING) << "retried, not failed";
  // The retry goes to the other worker, though the first is idle and first in order.
  v1::Assignment retry = good->NextAssignment();
  ASSERT_EQ(retry.items_size(), 1);
  core_->OnMessage(good.get(), Result(retry));
  const v1::GetJobResponse done = Job(job);
  EXPECT_EQ(done.job().state(), v1::JOB_DONE);
  EXPECT_EQ(done.items(0).worker_id(), "b-good");
}

TEST_F(CoordinatorTest, QuarantineEndsAndValidBatchesResetTheCount) {
  CoordinatorOptions options;
  options.max_attempts = 10;
  options.quarantine_ms = 200;
  Start(options);
  auto w = Connect("w1", 1);
  Submit(10);
  auto send = [&](bool valid) {
    v1::WorkerMessage m = Result(w->NextAssignment());
    if (!valid) m.mutable_result()->mutable_items(0)->set_png("junk");
    core_->OnMessage(w.get(), m);
  };
  send(false), send(false), send(true), send(false), send(false);
  EXPECT_FALSE(w->WaitClosed(std::chrono::milliseconds(100))) << "no three invalid batches in a row";
  send(false);
  ASSERT_TRUE(w->WaitClosed());
  EXPECT_EQ(core_->Register(std::make_shared<FakeChannel>(), Registration("w1", 1)).code(),
            absl::StatusCode::kPermissionDenied);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_TRUE(core_->Register(std::make_shared<FakeChannel>(), Registration("w1", 1)).ok());
}

}  // namespace
}  // namespace spriteforge::coordinator
