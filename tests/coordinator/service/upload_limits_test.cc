// Uploads through the real gRPC service with tokens: an owner's stored bytes, its uploads
// per minute and the blob folder's budget refuse an upload with RESOURCE_EXHAUSTED naming
// the limit; a stalled upload is cancelled with its partial file; collection deletes the
// files no unfinished job names once their grace is over.
#include <grpcpp/grpcpp.h>

#include <thread>

#include "coordinator/core/core_clock.h"
#include "coordinator/transport/access/gatekeeper.h"
#include "coordinator/transport/grpc/grpc_servers.h"
#include "spriteforge/v1/spriteforge.grpc.pb.h"
#include "tests/coordinator/service/coordinator_fixture.h"

namespace spriteforge::coordinator {
namespace {

namespace fs = std::filesystem;

constexpr char kAuth[] = R"(
tokens:
  - {name: alice, token: alice-token-0123456789, role: submitter}
  - {name: bob, token: bob-token-01234567890, role: submitter, max_upload_mb: 1}
  - {name: carol, token: carol-token-012345678, role: submitter, uploads_per_minute: 2}
)";
constexpr char kAlice[] = "alice-token-0123456789", kBob[] = "bob-token-01234567890",
               kCarol[] = "carol-token-012345678";

class UploadLimitsTest : public testing::CoordinatorTest {
 protected:
  void SetUp() override {
    CoordinatorOptions options;
    options.owner_upload_bytes = 10000;
    options.blob_max_bytes = 20000;
    options.upload_idle_ms = 100;
    Start(options);
    auto table = TokenTable::Parse(kAuth, "auth.yaml");
    ASSERT_TRUE(table.ok()) << table.status();
    tokens_ = std::make_unique<TokenTable>(std::move(*table));
    gate_ = std::make_unique<Gatekeeper>(AccessOptions{tokens_.get()});
    client_service_ = std::make_unique<ClientService>(core_.get(), gate_.get());
    gateway_ = std::make_unique<WorkerGatewayService>(core_.get(), gate_.get());
    auto servers = StartGrpcServers("127.0.0.1:0", "", client_service_.get(), gateway_.get());
    ASSERT_TRUE(servers.ok()) << servers.status();
    servers_ = std::move(*servers);
    client_ = v1::SpriteForge::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(servers_.client_port),
                                                           grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    servers_.Shutdown(std::chrono::system_clock::now());
    servers_ = {};
    CoordinatorTest::TearDown();
  }
  grpc::Status UploadAs(const std::string& token, const std::string& bytes, std::string* sha256 = nullptr) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", std::string("Bearer ") + token);
    v1::FileRef ref;
    auto writer = client_->UploadFile(&ctx, &ref);
    v1::FileChunk chunk;
    chunk.set_kind(v1::FILE_IMAGE);
    chunk.set_size(bytes.size());
    chunk.set_data(bytes);
    writer->Write(chunk);
    writer->WritesDone();
    grpc::Status s = writer->Finish();
    if (sha256) *sha256 = ref.sha256();
    return s;
  }
  fs::path BlobDir() const { return core_->blobs()->dir(); }
  int IncomingFiles() const {
    int n = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(BlobDir() / "incoming")) ++n;
    return n;
  }
  void MakeOld(const std::string& sha256) {
    fs::last_write_time(BlobDir() / sha256, fs::file_time_type::clock::now() - std::chrono::hours(2));
  }

  std::unique_ptr<TokenTable> tokens_;
  std::unique_ptr<Gatekeeper> gate_;
  std::unique_ptr<ClientService> client_service_;
  std::unique_ptr<WorkerGatewayService> gateway_;
  GrpcServers servers_;
  std::unique_ptr<v1::SpriteForge::Stub> client_;
};

TEST_F(UploadLimitsTest, AnOwnerBeyondItsUploadQuotaIsRefusedWhileOthersStillUpload) {
  ASSERT_TRUE(UploadAs(kAlice, std::string(6000, 'a')).ok());
  const grpc::Status refused = UploadAs(kAlice, std::string(6000, 'b'));
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(refused.error_message().find("'alice' holds 6000 bytes of uploads, its quota is 10000"),
            std::string::npos) << refused.error_message();
  // Bob's token sets a quota of its own (1 MiB) over the default.
  EXPECT_TRUE(UploadAs(kBob, std::string(6000, 'c')).ok());
  EXPECT_TRUE(UploadAs(kBob, std::string(6000, 'd')).ok());
}

TEST_F(UploadLimitsTest, UploadsBeyondAnOwnersRatePerMinuteAreRefused) {
  EXPECT_TRUE(UploadAs(kCarol, "one").ok());
  EXPECT_TRUE(UploadAs(kCarol, "two").ok());
  const grpc::Status refused = UploadAs(kCarol, "three");
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(refused.error_message().find("uploads_per_minute limit of 2 reached for 'carol'"), std::string::npos)
      << refused.error_message();
  EXPECT_TRUE(UploadAs(kAlice, "four").ok());  // others keep their own pace
}

TEST_F(UploadLimitsTest, AnUploadThatWouldOverfillTheBlobFolderIsRefusedBeforeItIsWritten) {
  ASSERT_TRUE(UploadAs(kBob, std::string(9000, 'a')).ok());
  ASSERT_TRUE(UploadAs(kBob, std::string(9000, 'b')).ok());
  const grpc::Status refused = UploadAs(kAlice, std::string(6000, 'c'));
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(refused.error_message().find("--blob-max-gb"), std::string::npos) << refused.error_message();
  EXPECT_EQ(IncomingFiles(), 0);
  EXPECT_EQ(core_->blobs()->total_bytes(), 18000u);
}

TEST_F(UploadLimitsTest, AStalledUploadIsCancelledAndItsPartialFileRemoved) {
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", std::string("Bearer ") + kAlice);
  v1::FileRef ref;
  auto writer = client_->UploadFile(&ctx, &ref);
  v1::FileChunk chunk;
  chunk.set_kind(v1::FILE_IMAGE);
  chunk.set_size(5000);
  chunk.set_data(std::string(1000, 'x'));
  ASSERT_TRUE(writer->Write(chunk));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (IncomingFiles() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(IncomingFiles(), 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(150));  // past upload_idle_ms
  core_->Tick();
  EXPECT_EQ(IncomingFiles(), 0);
  EXPECT_EQ(core_->blobs()->total_bytes(), 0u);  // its reservation is free for others
  EXPECT_FALSE(writer->Finish().ok());
}

TEST_F(UploadLimitsTest, FilesNoUnfinishedJobNamesAreCollectedAfterTheirGrace) {
  const std::string png = *EncodePng({64, 64, 3, std::vector<uint8_t>(64 * 64 * 3, 7)});
  std::string named, old, young;
  ASSERT_TRUE(UploadAs(kAlice, png, &named).ok());
  ASSERT_TRUE(UploadAs(kAlice, "an old file", &old).ok());
  ASSERT_TRUE(UploadAs(kAlice, "a young file", &young).ok());
  v1::SubmitJobRequest request;
  request.set_manifest("name: t\nmodel: tiny-sdxl\ndefaults: {width: 64, height: 64}\n"
                       "items: [{prompt: potion, init_image: start.png}]\n");
  (*request.mutable_files())["start.png"] = named;
  ASSERT_TRUE(core_->Submit(request, "alice").ok());  // no worker: the job stays unfinished
  MakeOld(named);
  MakeOld(old);
  auto collected = core_->CollectBlobs(WallMs());
  ASSERT_TRUE(collected.ok()) << collected.status();
  EXPECT_EQ(*collected, 1);
  EXPECT_TRUE(fs::exists(BlobDir() / named));
  EXPECT_TRUE(fs::exists(BlobDir() / young));
  EXPECT_FALSE(fs::exists(BlobDir() / old));
}

// A job names only files its owner uploaded: naming another owner's file by its hash is
// answered word for word as naming one never uploaded, so hashes cannot be probed; sending
// the same bytes (which proves having them) makes the file the sender's too.
TEST_F(UploadLimitsTest, AnotherOwnersUploadedFileAnswersAsAMissingOne) {
  const std::string png = *EncodePng({64, 64, 3, std::vector<uint8_t>(64 * 64 * 3, 9)});
  std::string alices;
  ASSERT_TRUE(UploadAs(kAlice, png, &alices).ok());
  const std::string missing(64, 'a');
  auto submit = [&](const std::string& owner, const std::string& sha256) {
    v1::SubmitJobRequest request;
    request.set_manifest("name: t\nmodel: tiny-sdxl\ndefaults: {width: 64, height: 64}\n"
                         "items: [{prompt: potion, init_image: start.png}]\n");
    (*request.mutable_files())["start.png"] = sha256;
    return core_->Submit(request, owner).status();
  };
  const absl::Status others = submit("bob", alices);
  const absl::Status absent = submit("bob", missing);
  EXPECT_FALSE(others.ok());
  EXPECT_EQ(others.code(), absent.code());
  std::string answer(others.message());
  answer.replace(answer.find(alices), alices.size(), missing);
  EXPECT_EQ(answer, absent.message());
  EXPECT_NE(absent.message().find("no uploaded file"), std::string::npos) << absent;

  EXPECT_TRUE(submit("alice", alices).ok());
  std::string bobs;
  ASSERT_TRUE(UploadAs(kBob, png, &bobs).ok());
  EXPECT_EQ(bobs, alices);
  EXPECT_TRUE(submit("bob", alices).ok());
}

}  // namespace
}  // namespace spriteforge::coordinator
