// Results that cannot be written: each item's error names its own file, the items go back
// to the queue (a full disk is not their fault), dispatching pauses instead of rendering
// what cannot be stored, and once the files can be written the job completes with exactly
// one set of files per item.
#include <httplib.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "coordinator/transport/http/http_endpoint.h"
#include "coordinator/core/results.h"
#include "coordinator/store/sqlite.h"
#include "tests/coordinator/service/coordinator_fixture.h"

namespace spriteforge::coordinator {
namespace {

using testing::CoordinatorTest;

TEST_F(CoordinatorTest, UnwritableResultsRequeueWithTheirOwnFileAndPauseDispatch) {
  auto worker = Connect("w1", 4);
  const std::string job = Submit(2);
  const v1::Assignment first = worker->NextAssignment();
  ASSERT_EQ(first.items_size(), 2);
  // A folder where each image should go: the rename onto it fails, as on a full disk.
  std::vector<std::string> blocked;
  for (const auto& item : first.items()) {
    blocked.push_back(JobDir(dir_ + "/out", job) + "/" + std::to_string(item.index()) + "_" +
                      std::to_string(item.params().seed()) + ".png");
    std::filesystem::create_directories(blocked.back());
  }
  core_->OnMessage(worker.get(), Result(first));

  auto after = Job(job);
  EXPECT_EQ(after.job().counts().queued(), 2);
  EXPECT_EQ(after.job().counts().failed(), 0);
  for (const v1::Item& it : after.items()) {
    EXPECT_EQ(it.failure(), v1::FAILURE_STORAGE);
    EXPECT_EQ(it.failure_message().rfind(blocked[it.index()] + ": ", 0), 0u) << it.failure_message();
  }
  // Paused: no batch goes out while the pause lasts.
  core_->Tick();
  EXPECT_EQ(core_->ListWorkers().workers(0).running_items(), 0);

  for (const std::string& b : blocked) std::filesystem::remove(b);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  core_->Tick();
  const v1::Assignment retry = worker->NextAssignment();
  ASSERT_EQ(retry.items_size(), 2);
  core_->OnMessage(worker.get(), Result(retry));
  auto done = Job(job);
  EXPECT_EQ(done.job().state(), v1::JOB_DONE);
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(JobDir(dir_ + "/out", job))) {
    files += e.path().extension() == ".png" || e.path().extension() == ".json";
  }
  EXPECT_EQ(files, 2 * 2 + 1);  // two images, two sidecars, job.json
}

}  // namespace
}  // namespace spriteforge::coordinator

namespace spriteforge::coordinator {
namespace {

// A coordinator killed while writing leaves FILE.tmp.PID behind; its successor removes them.
TEST(ResultFilesTest, TemporaryFilesOfCutWritesAreRemoved) {
  const std::string out = std::filesystem::temp_directory_path() / "result_files_test";
  std::filesystem::remove_all(out);
  std::filesystem::create_directories(JobDir(out, "job-1"));
  for (const char* name : {"3_77.png.tmp.4242", "3_77.json.tmp.4242", "2_76.png", "job.json"}) {
    std::ofstream(JobDir(out, "job-1") + "/" + name) << "x";
  }
  EXPECT_EQ(RemoveTemporaryFiles(out, "job-1"), 2);
  EXPECT_TRUE(std::filesystem::exists(JobDir(out, "job-1") + "/2_76.png"));
  EXPECT_TRUE(std::filesystem::exists(JobDir(out, "job-1") + "/job.json"));
  EXPECT_EQ(RemoveTemporaryFiles(out, "job-2"), 0);  // no folder yet
  std::filesystem::remove_all(out);
}

// Rows name the result files; only files inside the results folder are served, however a
// row or a link points elsewhere.
TEST(ResultPathTest, OnlyFilesInsideTheResultsFolderAreServed) {
  namespace fs = std::filesystem;
  const fs::path out = fs::temp_directory_path() / "result_path_test" / "out";
  fs::remove_all(out.parent_path());
  fs::create_directories(out / "job-1");
  std::ofstream(out / "job-1" / "0_7.png") << "png";
  std::ofstream(out.parent_path() / "secret") << "secret";
  fs::create_symlink(out.parent_path() / "secret", out / "job-1" / "1_7.png");
  fs::create_symlink(out / "job-1" / "0_7.png", out / "job-1" / "2_7.png");
  const std::string inside = (out / "job-1" / "0_7.png").string();
  EXPECT_EQ(*ConfinedResultPath(out.string(), inside), inside);
  EXPECT_EQ(*ConfinedResultPath(out.string() + "/", (out / "job-1" / "2_7.png").string()), inside);  // a link within
  for (const std::string& outside :
       {std::string("/etc/shadow"), (out / "job-1" / "1_7.png").string(), (out / ".." / "secret").string(),
        (out / "job-1" / ".." / ".." / "secret").string(), out.string(), std::string()}) {
    auto refused = ConfinedResultPath(out.string(), outside);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied) << outside;
  }
  fs::remove_all(out.parent_path());
}

TEST_F(CoordinatorTest, AResultRowNamingAFileOutsideTheResultsFolderIsNotServed) {
  auto worker = Connect("w1", 4);
  const std::string job = Submit(1);
  core_->OnMessage(worker.get(), Result(worker->NextAssignment()));
  auto files = core_->ResultFiles(job, true);
  ASSERT_TRUE(files.ok()) << files.status();
  auto endpoint = HttpEndpoint::Start(core_.get(), "127.0.0.1", 0);
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  httplib::Client http("127.0.0.1", (*endpoint)->port());
  const std::string url = "/v1/jobs/" + job + "/results/0.png";
  EXPECT_EQ(http.Get(url)->status, 200);
  {
    auto db = Database::Open(dir_ + "/db.sqlite");
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE((*db)->Exec("UPDATE items SET image_path = '/etc/shadow'").ok());
  }
  auto refused = core_->ResultFiles(job, true);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(refused.status().message(),
            "job " + job + ": a result file lies outside the results folder and is not served");
  auto image = http.Get(url);
  EXPECT_EQ(image->status, 500);
  EXPECT_NE(image->body.find("image 0 of job " + job + " lies outside the results folder; not served"),
            std::string::npos)
      << image->body;
}

// The web page shows each image with what steered it: the control images as the ControlNet
// sees them (an uploaded picture at the item's size, a built-in pose drawn) and the
// reference images as uploaded, read like results (the job's readers only).
TEST_F(CoordinatorTest, AnItemsControlAndReferenceImagesAreServedBesideItsResult) {
  RasterImage picture{64, 64, 3, std::vector<uint8_t>(64 * 64 * 3, 200)};
  const std::string png = *EncodePng(picture);
  auto upload = core_->BeginUpload(ManifestFileKind::kImage, png.size(), "", {});
  ASSERT_TRUE(upload.ok()) << upload.status();
  ASSERT_TRUE((*upload)->Append(png).ok());
  auto stored = (*upload)->Finish();
  ASSERT_TRUE(stored.ok()) << stored.status();
  v1::SubmitJobRequest request;
  request.set_manifest(R"({"name": "t", "model": "tiny-sdxl", "defaults": {"width": 128, "height": 128, "steps": 4,
      "controls": [{"model": "depth", "image": "hero.png"}, {"model": "openpose", "pose": "walk_s_0"}],
      "reference": {"images": ["hero.png"], "adapter": "ip-plus"}}, "items": [{"prompt": "hero"}]})");
  (*request.mutable_files())["hero.png"] = stored->sha256;
  auto job = core_->Submit(request);
  ASSERT_TRUE(job.ok()) << job.status();
  auto endpoint = HttpEndpoint::Start(core_.get(), "127.0.0.1", 0);
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  httplib::Client http("127.0.0.1", (*endpoint)->port());
  const std::string item = "/v1/jobs/" + job->job().id() + "/items/0/inputs";

  auto list = http.Get(item);
  ASSERT_EQ(list->status, 200) << list->body;
  const nlohmann::json inputs = nlohmann::json::parse(list->body)["inputs"];
  ASSERT_EQ(inputs.size(), 3u);
  EXPECT_EQ(inputs[1]["kind"], "control");
  EXPECT_EQ(inputs[2], nlohmann::json({{"name", "reference0"}, {"kind", "reference"}, {"url", item + "/reference0.png"}}));
  for (const char* control : {"/control0.png", "/control1.png"}) {
    auto image = http.Get(item + control);
    ASSERT_EQ(image->status, 200) << control << " " << image->body;
    auto decoded = DecodePng(image->body);
    ASSERT_TRUE(decoded.ok());
    EXPECT_EQ(decoded->width, 128) << control;  // the item's size, as the ControlNet sees it
  }
  auto reference = http.Get(item + "/reference0.png");
  ASSERT_EQ(reference->status, 200);
  EXPECT_EQ(reference->body, png);
  EXPECT_EQ(http.Get(item + "/control2.png")->status, 404);
  EXPECT_EQ(http.Get("/v1/jobs/" + job->job().id() + "/items/5/inputs")->status, 404);
}

// A typed manifest (the HTTP dialects') names uploads by hash: the core takes only the
// submitter's own, as it does for a manifest's paths.
TEST_F(CoordinatorTest, ATypedManifestNamingAnotherOwnersUploadIsRefused) {
  RasterImage picture{64, 64, 3, std::vector<uint8_t>(64 * 64 * 3, 90)};
  const std::string png = *EncodePng(picture);
  auto upload = core_->BeginUpload(ManifestFileKind::kImage, png.size(), "alice", {});
  ASSERT_TRUE(upload.ok()) << upload.status();
  ASSERT_TRUE((*upload)->Append(png).ok());
  auto stored = (*upload)->Finish();
  ASSERT_TRUE(stored.ok()) << stored.status();
  Manifest manifest;
  manifest.name = "txt2img";
  manifest.model = "tiny-sdxl";
  ManifestEntry entry;
  entry.image.set_prompt("hero");
  entry.image.add_reference_sha256(stored->sha256);
  entry.sampling.set_width(64);
  entry.sampling.set_height(64);
  entry.sampling.set_steps(2);
  entry.sampling.mutable_ip_adapter()->set_name("ip-plus");
  manifest.entries.push_back(entry);
  manifest.image_count = 1;

  auto stolen = core_->SubmitManifest(manifest, "", "mallory");
  EXPECT_EQ(stolen.status().code(), absl::StatusCode::kNotFound) << stolen.status();
  auto own = core_->SubmitManifest(manifest, "", "alice");
  ASSERT_TRUE(own.ok()) << own.status();
  EXPECT_EQ(own->job().name(), "txt2img");
}

}  // namespace
}  // namespace spriteforge::coordinator
