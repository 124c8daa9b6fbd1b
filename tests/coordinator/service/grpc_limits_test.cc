// The coordinator's gRPC faces, in process on loopback ports: with a worker port of their
// own, workers keep room for batches of images while client calls are limited to small
// messages; and a worker refused by the core hears why, with the core's status code.
#include <grpcpp/grpcpp.h>

#include "coordinator/transport/grpc/grpc_servers.h"
#include "spriteforge/v1/spriteforge.grpc.pb.h"
#include "tests/coordinator/service/coordinator_fixture.h"

namespace spriteforge::coordinator {
namespace {

class GrpcLimitsTest : public testing::CoordinatorTest {
 protected:
  void Serve(bool worker_port) {
    client_service_ = std::make_unique<ClientService>(core_.get());
    gateway_ = std::make_unique<WorkerGatewayService>(core_.get());
    auto servers = StartGrpcServers("127.0.0.1:0", worker_port ? "127.0.0.1:0" : "", client_service_.get(),
                                    gateway_.get());
    ASSERT_TRUE(servers.ok()) << servers.status();
    servers_ = std::move(*servers);
    grpc::ChannelArguments args;
    args.SetMaxSendMessageSize(64 << 20);
    client_ = v1::SpriteForge::NewStub(Channel(servers_.client_port, args));
    workers_ = v1::WorkerGateway::NewStub(Channel(worker_port ? servers_.worker_port : servers_.client_port, args));
  }
  void TearDown() override {
    servers_.Shutdown(std::chrono::system_clock::now());
    servers_ = {};
    CoordinatorTest::TearDown();
  }
  static std::shared_ptr<grpc::Channel> Channel(int port, const grpc::ChannelArguments& args) {
    return grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials(), args);
  }
  grpc::Status SubmitBytes(size_t bytes) {
    v1::SubmitJobRequest request;
    request.set_manifest("name: big\nmodel: tiny-sdxl\nitems: [{prompt: a}]\n" + std::string(bytes, '#'));
    v1::SubmitJobResponse response;
    grpc::ClientContext ctx;
    return client_->SubmitJob(&ctx, request, &response);
  }
  // Opens a worker stream, sends `reg` and returns how the coordinator ended the stream.
  grpc::Status RegisterOverGrpc(const v1::Register& reg) {
    grpc::ClientContext ctx;
    auto stream = workers_->Connect(&ctx);
    v1::WorkerMessage hello;
    *hello.mutable_register_() = reg;
    stream->Write(hello);
    v1::CoordinatorMessage reply;
    while (stream->Read(&reply)) {
      if (reply.has_registered()) ctx.TryCancel();  // accepted: leave
    }
    return stream->Finish();
  }
  std::unique_ptr<ClientService> client_service_;
  std::unique_ptr<WorkerGatewayService> gateway_;
  GrpcServers servers_;
  std::unique_ptr<v1::SpriteForge::Stub> client_;
  std::unique_ptr<v1::WorkerGateway::Stub> workers_;
};

TEST_F(GrpcLimitsTest, AWorkerPortLeavesClientCallsOnlySmallMessages) {
  Serve(/*worker_port=*/true);
  EXPECT_TRUE(SubmitBytes(1000).ok());
  const grpc::Status big = SubmitBytes(5 << 20);
  EXPECT_EQ(big.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << big.error_message();
  // A worker's message of the same size still arrives (and is judged by the core).
  v1::Register reg = Registration("w1", 4);
  reg.set_version(std::string(5 << 20, 'v'));
  const grpc::Status judged = RegisterOverGrpc(reg);
  EXPECT_EQ(judged.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(judged.error_message(), "register.version: longer than 128 characters");
}

TEST_F(GrpcLimitsTest, OnOnePortClientsShareTheWorkersLimit) {
  Serve(/*worker_port=*/false);
  const grpc::Status big = SubmitBytes(5 << 20);
  EXPECT_EQ(big.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(big.error_message().find("the limit is 1048576"), std::string::npos) << big.error_message();
}

TEST_F(GrpcLimitsTest, ASecondStreamWithAConnectedWorkersIdHearsAlreadyExists) {
  Serve(/*worker_port=*/true);
  auto connected = Connect("w1", 4);
  const grpc::Status refused = RegisterOverGrpc(Registration("w1", 4));
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(refused.error_message(), "worker w1 is already connected");
}

}  // namespace
}  // namespace spriteforge::coordinator
