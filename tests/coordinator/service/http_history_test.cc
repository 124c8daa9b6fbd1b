// The HTTP API of the page's history and pickers: GET /v1/jobs searched and paged in the
// store (q, dates, offset, limit, total), and GET /v1/workers/files with the hashes workers
// report.
#include <gtest/gtest.h>
#include <httplib.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "coordinator/transport/http/http_endpoint.h"
#include "tests/coordinator/service/coordinator_fixture.h"

namespace spriteforge::coordinator {
namespace {

class HttpHistoryTest : public testing::CoordinatorTest {
 protected:
  void SetUp() override {
    CoordinatorTest::SetUp();
    auto endpoint = HttpEndpoint::Start(core_.get(), "127.0.0.1", 0, {}, {}, {});
    ASSERT_TRUE(endpoint.ok()) << endpoint.status();
    endpoint_ = std::move(*endpoint);
  }
  void TearDown() override {
    endpoint_.reset();
    CoordinatorTest::TearDown();
  }
  std::string SubmitPrompts(const std::string& name, const std::vector<std::string>& prompts) {
    std::string items;
    for (const std::string& p : prompts) items += "  - {prompt: \"" + p + "\", seed: 1}\n";
    v1::SubmitJobRequest request;
    request.set_manifest("name: " + name + "\nmodel: tiny-sdxl\ndefaults: {width: 128, height: 128, steps: 4}\nitems:\n" +
                         items);
    auto response = core_->Submit(request);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? response->job().id() : "";
  }
  // GET `path`: the status and the JSON body.
  std::pair<int, nlohmann::json> Get(const std::string& path) {
    httplib::Client http("127.0.0.1", endpoint_->port());
    auto res = http.Get(path.c_str());
    if (!res) return {0, {}};
    return {res->status, nlohmann::json::parse(res->body, nullptr, false)};
  }
  std::vector<std::string> Ids(const nlohmann::json& body) {
    std::vector<std::string> out;
    for (const auto& job : body["jobs"]) out.push_back(job["id"]);
    return out;
  }
  std::unique_ptr<HttpEndpoint> endpoint_;
};

TEST_F(HttpHistoryTest, JobsAreSearchedByPromptAndPagedWithTheirTotal) {
  const std::string potions = SubmitPrompts("potions", {"red potion bottle", "blue potion"});
  const std::string slimes = SubmitPrompts("monsters", {"green slime", "Slime king with crown"});
  std::vector<std::string> others;
  for (int i = 0; i < 5; ++i) others.push_back(SubmitPrompts("crowns " + std::to_string(i), {"golden crown"}));

  auto [status, found] = Get("/v1/jobs?q=SLIME%20king");
  ASSERT_EQ(status, 200) << found.dump();
  EXPECT_EQ(Ids(found), std::vector<std::string>{slimes});
  EXPECT_EQ(found["total"], 1);

  // "crown": five jobs by name and prompt and one by a prompt; pages of two, newest first.
  auto [s1, first] = Get("/v1/jobs?q=crown&limit=2");
  ASSERT_EQ(s1, 200);
  EXPECT_EQ(first["total"], 6);
  EXPECT_EQ(Ids(first), (std::vector<std::string>{others[4], others[3]}));
  auto [s2, last] = Get("/v1/jobs?q=crown&limit=2&offset=4");
  ASSERT_EQ(s2, 200);
  EXPECT_EQ(Ids(last), (std::vector<std::string>{others[0], slimes}));

  // Dates: every job was made now; none before 1 s after the epoch or from the far future.
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_EQ(Get("/v1/jobs?created_until_unix_ms=1000").second["total"], 0);
  EXPECT_EQ(Get("/v1/jobs?created_from_unix_ms=" + std::to_string(now + 3600000)).second["total"], 0);
  auto [s3, all] = Get("/v1/jobs?created_from_unix_ms=1000&q=potion%20queued");
  ASSERT_EQ(s3, 200);
  EXPECT_EQ(Ids(all), std::vector<std::string>{potions});

  for (const char* bad : {"/v1/jobs?limit=0", "/v1/jobs?limit=1001", "/v1/jobs?offset=-1", "/v1/jobs?offset=x",
                          "/v1/jobs?created_from_unix_ms=-5", "/v1/jobs?created_until_unix_ms=soon"}) {
    auto [code, body] = Get(bad);
    EXPECT_EQ(code, 400) << bad << ": " << body.dump();
  }
  EXPECT_EQ(Get("/v1/jobs?q=" + std::string(1001, 'a')).first, 400);
}

TEST_F(HttpHistoryTest, WorkerFilesCarryTheHashesTheWorkerReported) {
  v1::Register reg = Registration("w1", 4);
  v1::LoraFile* lora = reg.add_lora_files();
  lora->set_name("pixel-art");
  lora->set_size_bytes(1234);
  lora->set_sha256(std::string(64, 'a'));
  v1::LoraFile* net = reg.add_controlnet_files();
  net->set_name("canny");
  net->set_size_bytes(99);  // a worker that reported no hash
  auto channel = std::make_shared<testing::FakeChannel>();
  ASSERT_TRUE(core_->Register(channel, reg).ok());
  auto [status, body] = Get("/v1/workers/files");
  ASSERT_EQ(status, 200);
  ASSERT_EQ(body["workers"].size(), 1u);
  const auto& w = body["workers"][0];
  EXPECT_EQ(w["loras"], nlohmann::json::parse(R"([{"name": "pixel-art", "size_bytes": 1234, "sha256": ")" +
                                              std::string(64, 'a') + R"("}])"));
  EXPECT_EQ(w["controlnets"], nlohmann::json::parse(R"([{"name": "canny", "size_bytes": 99, "sha256": ""}])"));
}

TEST_F(HttpHistoryTest, WorkerFilesCarryTheModelsHashes) {
  v1::Register reg = Registration("w1", 4);
  ASSERT_EQ(reg.models_size(), 1);
  const std::string model = reg.models(0);
  v1::LoraFile* weights = reg.add_model_files();
  weights->set_name(model);
  weights->set_size_bytes(6938040682);
  weights->set_sha256(std::string(64, 'b'));
  auto channel = std::make_shared<testing::FakeChannel>();
  ASSERT_TRUE(core_->Register(channel, reg).ok());
  // A worker that reports its models by name only: each with size 0 and no hash.
  v1::Register old = Registration("w2", 4);
  auto old_channel = std::make_shared<testing::FakeChannel>();
  ASSERT_TRUE(core_->Register(old_channel, old).ok());

  auto [status, body] = Get("/v1/workers/files");
  ASSERT_EQ(status, 200);
  ASSERT_EQ(body["workers"].size(), 2u);
  std::map<std::string, nlohmann::json> by_id;
  for (const auto& w : body["workers"]) by_id[w["id"]] = w;
  ASSERT_EQ(by_id.count("w1"), 1u);
  ASSERT_EQ(by_id.count("w2"), 1u);
  EXPECT_EQ(by_id["w1"]["models"], nlohmann::json::array({model}));  // the names, as before
  EXPECT_EQ(by_id["w1"]["model_files"],
            nlohmann::json::array({{{"name", model}, {"size_bytes", 6938040682}, {"sha256", std::string(64, 'b')}}}));
  EXPECT_EQ(by_id["w2"]["model_files"],
            nlohmann::json::array({{{"name", old.models(0)}, {"size_bytes", 0}, {"sha256", ""}}}));
}

TEST_F(HttpHistoryTest, AWorkerWithABadModelFileNameIsRefused) {
  v1::Register reg = Registration("w1", 4);
  reg.add_model_files()->set_name("../escape");
  auto channel = std::make_shared<testing::FakeChannel>();
  EXPECT_FALSE(core_->Register(channel, reg).ok());
}

}  // namespace
}  // namespace spriteforge::coordinator
