// Tokens, roles and ownership through the real gRPC services on loopback ports: every call
// without a valid token is UNAUTHENTICATED, every call across roles is PERMISSION_DENIED,
// another owner's job is NOT_FOUND as a missing one is, quotas and the submission rate are
// RESOURCE_EXHAUSTED naming the limit.
#include <grpcpp/grpcpp.h>
#include <httplib.h>

#include <nlohmann/json.hpp>

#include <regex>

#include "coordinator/transport/access/exposure.h"
#include "coordinator/transport/access/gatekeeper.h"
#include "coordinator/transport/grpc/grpc_servers.h"
#include "coordinator/transport/http/http_access.h"
#include "coordinator/transport/http/http_endpoint.h"
#include "spriteforge/v1/spriteforge.grpc.pb.h"
#include "tests/coordinator/service/coordinator_fixture.h"

namespace spriteforge::coordinator {
namespace {

constexpr char kAuth[] = R"(
tokens:
  - {name: alice, token: alice-token-0123456789, role: submitter, max_queued_images: 20, max_running_jobs: 2}
  - {name: bob, token: bob-token-01234567890, role: submitter, submits_per_minute: 3}
  - {name: dash, token: dash-token-0123456789, role: viewer}
  - {name: ops, token: ops-token-01234567890, role: admin}
  - {name: gpu, token: gpu-token-01234567890, role: worker}
)";
constexpr char kAlice[] = "alice-token-0123456789", kBob[] = "bob-token-01234567890",
               kViewer[] = "dash-token-0123456789", kAdmin[] = "ops-token-01234567890",
               kWorker[] = "gpu-token-01234567890";

class AccessTest : public testing::CoordinatorTest {
 protected:
  void SetUp() override {
    CoordinatorTest::SetUp();
    auto table = TokenTable::Parse(kAuth, "auth.yaml");
    ASSERT_TRUE(table.ok()) << table.status();
    tokens_ = std::make_unique<TokenTable>(std::move(*table));
    gate_ = std::make_unique<Gatekeeper>(AccessOptions{tokens_.get(), 0, false});
    client_service_ = std::make_unique<ClientService>(core_.get(), gate_.get());
    gateway_ = std::make_unique<WorkerGatewayService>(core_.get(), gate_.get());
    auto servers = StartGrpcServers("127.0.0.1:0", "", client_service_.get(), gateway_.get());
    ASSERT_TRUE(servers.ok()) << servers.status();
    servers_ = std::move(*servers);
    auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(servers_.client_port),
                                       grpc::InsecureChannelCredentials());
    client_ = v1::SpriteForge::NewStub(channel);
    workers_ = v1::WorkerGateway::NewStub(channel);
  }
  void TearDown() override {
    servers_.Shutdown(std::chrono::system_clock::now());
    servers_ = {};
    CoordinatorTest::TearDown();
  }
  static void Authorize(grpc::ClientContext* ctx, const std::string& token) {
    if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
  }
  grpc::Status SubmitAs(const std::string& token, int count, std::string* job_id = nullptr) {
    v1::SubmitJobRequest request;
    request.set_manifest("name: t\nmodel: tiny-sdxl\nitems: [{prompt: potion, count: " + std::to_string(count) + "}]\n");
    v1::SubmitJobResponse response;
    grpc::ClientContext ctx;
    Authorize(&ctx, token);
    grpc::Status s = client_->SubmitJob(&ctx, request, &response);
    if (job_id) *job_id = response.job().id();
    return s;
  }
  grpc::Status GetAs(const std::string& token, const std::string& job_id, v1::Job* job = nullptr) {
    v1::GetJobRequest request;
    request.set_job_id(job_id);
    v1::GetJobResponse response;
    grpc::ClientContext ctx;
    Authorize(&ctx, token);
    grpc::Status s = client_->GetJob(&ctx, request, &response);
    if (job) *job = response.job();
    return s;
  }
  grpc::Status CancelAs(const std::string& token, const std::string& job_id) {
    v1::CancelJobRequest request;
    request.set_job_id(job_id);
    v1::CancelJobResponse response;
    grpc::ClientContext ctx;
    Authorize(&ctx, token);
    return client_->CancelJob(&ctx, request, &response);
  }
  grpc::Status WatchAs(const std::string& token, const std::string& job_id) {
    v1::WatchJobRequest request;
    request.set_job_id(job_id);
    grpc::ClientContext ctx;
    Authorize(&ctx, token);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    auto reader = client_->WatchJob(&ctx, request);
    v1::JobEvent event;
    if (reader->Read(&event)) ctx.TryCancel();  // allowed: the snapshot arrived
    grpc::Status s = reader->Finish();
    return s.error_code() == grpc::StatusCode::CANCELLED ? grpc::Status::OK : s;
  }
  grpc::Status FetchAs(const std::string& token, const std::string& job_id) {
    v1::FetchResultsRequest request;
    request.set_job_id(job_id);
    grpc::ClientContext ctx;
    Authorize(&ctx, token);
    auto reader = client_->FetchResults(&ctx, request);
    v1::ResultFile file;
    while (reader->Read(&file)) {
    }
    return reader->Finish();
  }
  std::vector<std::string> ListAs(const std::string& token, grpc::Status* status = nullptr) {
    v1::ListJobsRequest request;
    v1::ListJobsResponse response;
    grpc::ClientContext ctx;
    Authorize(&ctx, token);
    grpc::Status s = client_->ListJobs(&ctx, request, &response);
    if (status) *status = s;
    std::vector<std::string> ids;
    for (const auto& job : response.jobs()) ids.push_back(job.id());
    return ids;
  }
  grpc::Status StatsAs(const std::string& token) {
    v1::GetStatsResponse response;
    grpc::ClientContext ctx;
    Authorize(&ctx, token);
    return client_->GetStats(&ctx, v1::GetStatsRequest(), &response);
  }
  // Opens the worker stream with `token` and registers; OK once registered.
  grpc::Status ConnectWorkerAs(const std::string& token) {
    grpc::ClientContext ctx;
    Authorize(&ctx, token);
    auto stream = workers_->Connect(&ctx);
    v1::WorkerMessage hello;
    *hello.mutable_register_() = Registration("w-" + token.substr(0, 3), 4);
    stream->Write(hello);
    v1::CoordinatorMessage reply;
    bool registered = false;
    while (stream->Read(&reply)) {
      if (reply.has_registered()) {
        registered = true;
        ctx.TryCancel();
      }
    }
    grpc::Status s = stream->Finish();
    return registered ? grpc::Status::OK : s;
  }

  std::unique_ptr<TokenTable> tokens_;
  std::unique_ptr<Gatekeeper> gate_;
  std::unique_ptr<ClientService> client_service_;
  std::unique_ptr<WorkerGatewayService> gateway_;
  GrpcServers servers_;
  std::unique_ptr<v1::SpriteForge::Stub> client_;
  std::unique_ptr<v1::WorkerGateway::Stub> workers_;
};

TEST_F(AccessTest, EveryCallWithoutAValidTokenIsUnauthenticated) {
  std::string job;
  ASSERT_TRUE(SubmitAs(kAlice, 1, &job).ok());
  for (const std::string token : {"", "not-a-token-of-this-table"}) {
    std::vector<grpc::Status> calls = {SubmitAs(token, 1), GetAs(token, job),   CancelAs(token, job),
                                       WatchAs(token, job), FetchAs(token, job), StatsAs(token),
                                       ConnectWorkerAs(token)};
    grpc::Status list;
    ListAs(token, &list);
    calls.push_back(list);
    for (const grpc::Status& s : calls) {
      EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
    }
  }
  EXPECT_EQ(SubmitAs("", 1).error_message(), "this coordinator needs a token: pass --token or set SPRITEFORGE_TOKEN");
}

TEST_F(AccessTest, ASubmitterReachesOnlyItsOwnJobs) {
  std::string alices, bobs;
  ASSERT_TRUE(SubmitAs(kAlice, 1, &alices).ok());
  ASSERT_TRUE(SubmitAs(kBob, 1, &bobs).ok());
  v1::Job job;
  ASSERT_TRUE(GetAs(kAlice, alices, &job).ok());
  EXPECT_EQ(job.owner(), "alice");
  // Another owner's job answers as a missing one does, so ids cannot be probed.
  for (const grpc::Status& s : {GetAs(kBob, alices), CancelAs(kBob, alices), WatchAs(kBob, alices), FetchAs(kBob, alices)}) {
    EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND) << s.error_message();
    EXPECT_EQ(s.error_message(), "no job " + alices);
  }
  const grpc::Status missing = GetAs(kBob, "job-000000000000");
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(missing.error_message(), "no job job-000000000000");
  EXPECT_TRUE(WatchAs(kAlice, alices).ok());
  EXPECT_TRUE(FetchAs(kAlice, alices).ok());
  EXPECT_EQ(ListAs(kBob), std::vector<std::string>{bobs});
  EXPECT_EQ(ListAs(kAlice), std::vector<std::string>{alices});
  EXPECT_TRUE(CancelAs(kAlice, alices).ok());
}

TEST_F(AccessTest, ViewersReadAllAdminsDoAllWorkersOnlyConnect) {
  std::string alices;
  ASSERT_TRUE(SubmitAs(kAlice, 1, &alices).ok());
  EXPECT_TRUE(GetAs(kViewer, alices).ok());
  EXPECT_TRUE(WatchAs(kViewer, alices).ok());
  EXPECT_EQ(ListAs(kViewer).size(), 1u);
  EXPECT_EQ(CancelAs(kViewer, alices).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(SubmitAs(kViewer, 1).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(ConnectWorkerAs(kViewer).error_code(), grpc::StatusCode::PERMISSION_DENIED);

  const grpc::Status worker_as_client = GetAs(kWorker, alices);
  EXPECT_EQ(worker_as_client.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(worker_as_client.error_message(),
            "token 'gpu' (worker) may only connect as a worker, not call the client API");
  EXPECT_EQ(StatsAs(kWorker).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(ConnectWorkerAs(kAlice).error_message(), "token 'alice' (submitter) may not connect as a worker");
  EXPECT_EQ(ConnectWorkerAs(kAdmin).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(ConnectWorkerAs(kWorker).ok());

  EXPECT_TRUE(StatsAs(kAlice).ok());
  EXPECT_TRUE(CancelAs(kAdmin, alices).ok());
  v1::Job job;
  ASSERT_TRUE(GetAs(kAlice, alices, &job).ok());
  EXPECT_EQ(job.state(), v1::JOB_CANCELLED);
}

TEST_F(AccessTest, QuotasAndTheSubmissionRateAreResourceExhaustedNamingTheLimit) {
  ASSERT_TRUE(SubmitAs(kAlice, 15).ok());
  const grpc::Status images = SubmitAs(kAlice, 6);
  EXPECT_EQ(images.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(images.error_message(),
            "max_queued_images limit of 20 for 'alice': 15 images unfinished, this job adds 6");
  std::string second;
  ASSERT_TRUE(SubmitAs(kAlice, 5, &second).ok());
  const grpc::Status jobs = SubmitAs(kAlice, 1);
  EXPECT_EQ(jobs.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(jobs.error_message(), "max_running_jobs limit of 2 for 'alice': 2 jobs unfinished");
  // A finished (here: cancelled) job no longer counts.
  ASSERT_TRUE(CancelAs(kAlice, second).ok());
  EXPECT_TRUE(SubmitAs(kAlice, 1).ok());

  for (int i = 0; i < 3; ++i) EXPECT_TRUE(SubmitAs(kBob, 1).ok()) << i;
  const grpc::Status rate = SubmitAs(kBob, 1);
  EXPECT_EQ(rate.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(rate.error_message().rfind("submits_per_minute limit of 3 reached for 'bob'; retry in ", 0), 0u)
      << rate.error_message();
}

TEST_F(AccessTest, TheHttpApiAsksForTheSameTokensAndOwnership) {
  auto endpoint = HttpEndpoint::Start(core_.get(), "127.0.0.1", 0, {}, {nullptr, gate_.get()});
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  httplib::Client http("127.0.0.1", (*endpoint)->port());
  auto as = [](const std::string& token) { return httplib::Headers{{"Authorization", "Bearer " + token}}; };
  const std::string manifest = "name: t\nmodel: tiny-sdxl\nitems: [{prompt: potion}]\n";
  auto anonymous = http.Post("/v1/jobs", manifest, "application/yaml");
  ASSERT_TRUE(anonymous);
  EXPECT_EQ(anonymous->status, 401);
  EXPECT_NE(anonymous->body.find("this coordinator needs a token"), std::string::npos) << anonymous->body;
  auto posted = http.Post("/v1/jobs", as(kAlice), manifest, "application/yaml");
  ASSERT_EQ(posted->status, 201) << posted->body;
  const auto job = nlohmann::json::parse(posted->body)["job"];
  const std::string id = job["id"];
  EXPECT_EQ(job["owner"], "alice");

  for (const std::string path : {"/v1/jobs/" + id, "/v1/jobs/" + id + "/results", "/v1/jobs/" + id + "/events",
                                 "/v1/jobs/" + id + "/results/0.png"}) {
    EXPECT_EQ(http.Get(path, as(kBob))->status, 404) << path;  // as a missing job answers
    EXPECT_EQ(http.Get(path)->status, 401) << path;
  }
  auto foreign = http.Get("/v1/jobs/" + id, as(kBob));
  auto missing = http.Get("/v1/jobs/job-000000000000", as(kBob));
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(foreign->body, std::regex_replace(missing->body, std::regex("job-000000000000"), id));
  EXPECT_EQ(http.Get("/v1/jobs/" + id, as(kAlice))->status, 200);
  EXPECT_EQ(http.Get("/v1/jobs/" + id, as(kViewer))->status, 200);
  EXPECT_EQ(nlohmann::json::parse(http.Get("/v1/jobs", as(kBob))->body).value("jobs", nlohmann::json::array()).size(), 0u);
  EXPECT_EQ(nlohmann::json::parse(http.Get("/v1/jobs", as(kViewer))->body)["jobs"].size(), 1u);
  EXPECT_EQ(http.Post("/v1/jobs/" + id + "/cancel", as(kViewer), "", "application/json")->status, 403);
  EXPECT_EQ(http.Post("/v1/jobs/" + id + "/cancel", as(kBob), "", "application/json")->status, 404);
  EXPECT_EQ(http.Get("/v1/workers", as(kWorker))->status, 403);
  EXPECT_EQ(http.Get("/stats", as(kWorker))->status, 403);
  EXPECT_EQ(http.Get("/stats", as(kViewer))->status, 200);
  EXPECT_EQ(http.Post("/sdapi/v1/txt2img", as(kViewer), "{}", "application/json")->status, 403);
  EXPECT_EQ(http.Post("/v1/images/generations", "{}", "application/json")->status, 401);
  EXPECT_EQ(http.Get("/metrics")->status, 200);
  EXPECT_NE(http.Get("/healthz")->status, 401);
  EXPECT_EQ(http.Post("/v1/jobs/" + id + "/cancel", as(kAlice), "", "application/json")->status, 200);
}

TEST(HttpAccessTest, RoutesAreClassifiedByMethodAndPath) {
  EXPECT_EQ(ClassifyHttpRequest("GET", "/metrics").route, HttpRoute::kOpen);
  EXPECT_EQ(ClassifyHttpRequest("GET", "/web/app.js").route, HttpRoute::kOpen);
  EXPECT_EQ(ClassifyHttpRequest("POST", "/v1/jobs").route, HttpRoute::kSubmit);
  EXPECT_EQ(ClassifyHttpRequest("GET", "/v1/jobs").route, HttpRoute::kReadFleet);
  EXPECT_EQ(ClassifyHttpRequest("POST", "/sdapi/v1/txt2img").route, HttpRoute::kSubmit);
  EXPECT_EQ(ClassifyHttpRequest("POST", "/sdapi/v1/img2img").route, HttpRoute::kSubmit);
  // A caller's options change only its own later calls: a viewer may set them.
  EXPECT_EQ(ClassifyHttpRequest("POST", "/sdapi/v1/options").route, HttpRoute::kReadFleet);
  const HttpTarget cancel = ClassifyHttpRequest("POST", "/v1/jobs/job-1/cancel");
  EXPECT_EQ(cancel.route, HttpRoute::kCancelJob);
  EXPECT_EQ(cancel.job_id, "job-1");
  EXPECT_EQ(ClassifyHttpRequest("GET", "/v1/jobs/job-1/results/3.png").route, HttpRoute::kReadJob);
  EXPECT_EQ(ClassifyHttpRequest("GET", "/v1/jobs/job-1/cancel").route, HttpRoute::kReadJob);
  EXPECT_EQ(ClassifyHttpRequest("GET", "/sdapi/v1/sd-models").route, HttpRoute::kReadFleet);
  EXPECT_EQ(ClassifyHttpRequest("GET", "/v1/jobs/").route, HttpRoute::kReadFleet);
}

// Deleting a job is its owner's or an admin's, as cancelling it; an upload is a submitter's.
TEST(HttpAccessTest, DeletingAJobIsClassifiedAsCancellingItAndUploadsAsSubmitting) {
  const HttpTarget del = ClassifyHttpRequest("DELETE", "/v1/jobs/job-1");
  EXPECT_EQ(del.route, HttpRoute::kCancelJob);
  EXPECT_EQ(del.job_id, "job-1");
  EXPECT_EQ(ClassifyHttpRequest("GET", "/v1/jobs/job-1/archive.zip").route, HttpRoute::kReadJob);
  EXPECT_EQ(ClassifyHttpRequest("POST", "/v1/files").route, HttpRoute::kSubmit);
  EXPECT_EQ(ClassifyHttpRequest("GET", "/favicon.ico").route, HttpRoute::kOpen);
}

}  // namespace
}  // namespace spriteforge::coordinator

namespace spriteforge::coordinator {
namespace {

// What counts as "this machine only" for a coordinator without TLS or tokens.
TEST(ListenPolicyTest, OnlyLoopbackAddressesAreLocal) {
  for (const char* local : {"127.0.0.1:50051", "127.8.9.10:0", "localhost:50051", "[::1]:50051", "unix:/run/sf.sock"}) {
    EXPECT_TRUE(IsLoopbackAddress(local)) << local;
  }
  for (const char* open : {"0.0.0.0:50051", "[::]:50051", "10.0.0.5:50051", "coordinator:50051", "128.0.0.1:1"}) {
    EXPECT_FALSE(IsLoopbackAddress(open)) << open;
  }
}

// Who a coordinator would serve with its flags: any port other machines reach needs tokens
// (gRPC: or client certificates), unless --insecure-listen says to serve them anyway.
TEST(ExposureTest, PortsForOtherMachinesNeedTokensOrCertificatesUnlessInsecure) {
  const Exposure local{"127.0.0.1:50051", "", "127.0.0.1:8080"};
  EXPECT_TRUE(CheckExposure(local).ok());

  Exposure open_http = local;
  open_http.http = "0.0.0.0:8080";
  EXPECT_EQ(CheckExposure(open_http).message(),
            "--http 0.0.0.0:8080: without --auth anyone who reaches this address can submit, cancel and read every "
            "job; serve HTTP on 127.0.0.1, add --auth, or use --insecure-listen instead of --listen to serve others "
            "without tokens");
  Exposure https_alone = open_http;
  https_alone.tls = true;
  https_alone.client_ca = true;  // browsers present no certificates: the HTTP port still admits anyone
  EXPECT_FALSE(CheckExposure(https_alone).ok());
  Exposure with_tokens = open_http;
  with_tokens.tokens = true;
  EXPECT_TRUE(CheckExposure(with_tokens).ok());
  Exposure insecure = open_http;
  insecure.listen = "0.0.0.0:50051";
  insecure.insecure = true;
  EXPECT_TRUE(CheckExposure(insecure).ok());

  Exposure tls_alone{"0.0.0.0:50051", "", "127.0.0.1:8080"};
  tls_alone.tls = true;
  EXPECT_EQ(CheckExposure(tls_alone).message(),
            "0.0.0.0:50051: --tls-cert without --auth encrypts but admits anyone who reaches this port; add --auth "
            "(tokens) to serve other machines");
  Exposure certificates = tls_alone;
  certificates.client_ca = true;  // workers share the port: every caller needs a certificate
  EXPECT_TRUE(CheckExposure(certificates).ok());
  certificates.worker_listen = "0.0.0.0:50052";  // a client port of its own asks for none
  EXPECT_FALSE(CheckExposure(certificates).ok());
  certificates.listen = "127.0.0.1:50051";
  EXPECT_TRUE(CheckExposure(certificates).ok());
}

}  // namespace
}  // namespace spriteforge::coordinator
