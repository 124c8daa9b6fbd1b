// Previews end to end: a job with preview_every: 2 on the golden tiny model (real
// coordinator and worker processes, the engine on the CPU) sends preview events of
// width/8 x height/8 PNGs, every second step, to gRPC WatchJob and to the HTTP event
// stream alike; a job without preview_every sends none.
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "common/png.h"
#include "tests/system/cluster.h"

namespace spriteforge::testing {
namespace {

struct Preview {
  int index = 0, step = 0, total_steps = 0, width = 0, height = 0;
  std::string png;
};

struct Seen {
  std::vector<Preview> previews;
  std::vector<std::string> kinds;
  bool finished = false;
};

// Every event of the job until job_done, over gRPC.
Seen WatchOverGrpc(Cluster& cluster, const std::string& job_id) {
  Seen seen;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(180));
  v1::WatchJobRequest request;
  request.set_job_id(job_id);
  auto reader = cluster.Stub().WatchJob(&ctx, request);
  v1::JobEvent event;
  while (reader->Read(&event)) {
    if (event.has_preview()) {
      const v1::ItemPreview& p = event.preview();
      seen.previews.push_back({p.index(), p.step(), p.total_steps(), p.width(), p.height(), p.png()});
      EXPECT_TRUE(event.has_job()) << "every event carries the job's snapshot";
    }
    if (event.has_job_done()) seen.finished = true;
  }
  EXPECT_TRUE(reader->Finish().ok());
  return seen;
}

// The same over Server-Sent Events: event name, then the JobEvent as JSON (PNG in base64).
Seen WatchOverSse(Cluster& cluster, const std::string& job_id) {
  Seen seen;
  const std::string address = cluster.http_address();
  const size_t colon = address.rfind(':');
  httplib::Client client(address.substr(0, colon), std::stoi(address.substr(colon + 1)));
  client.set_read_timeout(180, 0);
  std::string buffer;
  auto result = client.Get(("/v1/jobs/" + job_id + "/events").c_str(), [&](const char* data, size_t size) {
    buffer.append(data, size);
    size_t end;
    while ((end = buffer.find("\n\n")) != std::string::npos) {
      const std::string block = buffer.substr(0, end);
      buffer.erase(0, end + 2);
      std::string kind, json;
      size_t start = 0;
      while (start < block.size()) {
        size_t nl = block.find('\n', start);
        if (nl == std::string::npos) nl = block.size();
        const std::string line = block.substr(start, nl - start);
        if (line.rfind("event: ", 0) == 0) kind = line.substr(7);
        if (line.rfind("data: ", 0) == 0) json = line.substr(6);
        start = nl + 1;
      }
      if (json.empty()) continue;
      seen.kinds.push_back(kind);
      const auto event = nlohmann::json::parse(json);
      if (kind == "preview") {
        const auto& p = event.at("preview");
        Preview preview{p.value("index", 0), p.at("step").get<int>(), p.at("total_steps").get<int>(),
                        p.at("width").get<int>(), p.at("height").get<int>(), ""};
        EXPECT_TRUE(absl::Base64Unescape(p.at("png").get<std::string>(), &preview.png)) << "png is not base64";
        seen.previews.push_back(std::move(preview));
      }
      if (kind == "job_done") seen.finished = true;
    }
    return true;
  });
  EXPECT_TRUE(result) << "event stream failed";
  if (result) EXPECT_EQ(result->status, 200);
  return seen;
}

// Each preview: a PNG of 1/8 the image's size, on an even step; every image has one.
void ExpectPreviews(const Seen& seen, int images, int width, int height, int steps, const std::string& how) {
  SCOPED_TRACE(how);
  EXPECT_TRUE(seen.finished);
  std::set<int> indices;
  for (const Preview& p : seen.previews) {
    EXPECT_EQ(p.width, width / 8);
    EXPECT_EQ(p.height, height / 8);
    EXPECT_EQ(p.step % 2, 0) << "step " << p.step;
    EXPECT_EQ(p.total_steps, steps);
    EXPECT_LE(p.step, steps);
    auto png = DecodePng(p.png);
    ASSERT_TRUE(png.ok()) << png.status();
    EXPECT_EQ(png->width, width / 8);
    EXPECT_EQ(png->height, height / 8);
    EXPECT_EQ(png->channels, 3);
    indices.insert(p.index);
  }
  std::set<int> all;
  for (int i = 0; i < images; ++i) all.insert(i);
  EXPECT_EQ(indices, all) << seen.previews.size() << " previews";
}

std::string Manifest(const std::string& name, int count, const std::string& extra) {
  return "name: " + name + "\nmodel: tiny-sdxl\n" + extra +
         "defaults: {width: 128, height: 64, steps: 6, cfg: 5.0, sampler: euler}\n"
         "items:\n  - {prompt: \"a green potion\", count: " + std::to_string(count) + ", seed: 11}\n";
}

std::string SubmitRpc(Cluster& cluster, const std::string& manifest) {
  grpc::ClientContext ctx;
  v1::SubmitJobRequest request;
  request.set_manifest(manifest);
  request.set_manifest_name("preview.yaml");
  v1::SubmitJobResponse response;
  const grpc::Status status = cluster.Stub().SubmitJob(&ctx, request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return response.job().id();
}

TEST(PreviewTest, AJobWithPreviewEveryTwoStreamsSmallPreviewsOverWatchJobAndSse) {
  if (GoldenModel().empty()) GTEST_SKIP() << "golden folder missing: set SPRITEFORGE_GOLDEN";
  Cluster cluster(TempDir("preview"));
  cluster.StartCoordinator();
  // Submitted before any worker connects, so both watchers are attached before step 1.
  const std::string with = SubmitRpc(cluster, Manifest("with-previews", 6, "preview_every: 2\n"));
  const std::string without = SubmitRpc(cluster, Manifest("without-previews", 2, ""));
  ASSERT_FALSE(with.empty());
  EXPECT_EQ(cluster.Job(with).job().preview_every(), 2);
  Seen grpc_seen, sse_seen, plain_seen;
  std::thread grpc_watch([&] { grpc_seen = WatchOverGrpc(cluster, with); });
  std::thread sse_watch([&] { sse_seen = WatchOverSse(cluster, with); });
  std::thread plain_watch([&] { plain_seen = WatchOverSse(cluster, without); });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  cluster.StartWorker("w1", {"--max-batch", "4"});
  grpc_watch.join();
  sse_watch.join();
  plain_watch.join();

  ExpectPreviews(grpc_seen, 6, 128, 64, 6, "WatchJob");
  ExpectPreviews(sse_seen, 6, 128, 64, 6, "SSE");
  EXPECT_TRUE(plain_seen.finished);
  EXPECT_TRUE(plain_seen.previews.empty()) << "a job without preview_every got previews";
  EXPECT_EQ(cluster.Job(with).job().state(), v1::JOB_DONE);
}

TEST(PreviewTest, ABadPreviewEveryIsRefusedWithOneLine) {
  Cluster cluster(TempDir("preview-bad"));
  cluster.StartCoordinator();
  grpc::ClientContext ctx;
  v1::SubmitJobRequest request;
  request.set_manifest(Manifest("bad", 1, "preview_every: -1\n"));
  request.set_manifest_name("bad.yaml");
  v1::SubmitJobResponse response;
  const grpc::Status status = cluster.Stub().SubmitJob(&ctx, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("preview_every"), std::string::npos) << status.error_message();
}

}  // namespace
}  // namespace spriteforge::testing
