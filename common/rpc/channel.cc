#include "common/rpc/channel.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/support/client_interceptor.h>

#include <CLI/CLI.hpp>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "spriteforge/v1/spriteforge.grpc.pb.h"

namespace spriteforge {
namespace {

namespace gx = grpc::experimental;

// Adds the token to every call's initial metadata. An interceptor rather than call
// credentials, because gRPC sends call credentials only over TLS and a loopback
// coordinator with --auth listens in plaintext.
class TokenInterceptor : public gx::Interceptor {
 public:
  explicit TokenInterceptor(const std::string* value) : value_(value) {}
  void Intercept(gx::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(gx::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->insert({"authorization", *value_});
    }
    methods->Proceed();
  }

 private:
  const std::string* value_;
};

class TokenInterceptorFactory : public gx::ClientInterceptorFactoryInterface {
 public:
  explicit TokenInterceptorFactory(std::string token) : value_("Bearer " + token) {}
  gx::Interceptor* CreateClientInterceptor(gx::ClientRpcInfo*) override { return new TokenInterceptor(&value_); }

 private:
  std::string value_;
};

absl::StatusOr<std::string> Read(const char* flag, const std::string& path) {
  auto data = ReadFile(path);
  if (!data.ok()) return absl::InvalidArgumentError(absl::StrCat(flag, ": ", data.status().message()));
  return data;
}

}  // namespace

void AddTlsFlags(CLI::App& app, ChannelSecurity& security) {
  app.add_option("--tls-ca", security.ca_file, "PEM CA of the coordinator's certificate: connect with TLS")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-cert", security.cert_file, "PEM client certificate, for coordinators that require one")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-key", security.key_file, "PEM private key of --tls-cert")->check(CLI::ExistingFile);
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> DialCoordinator(const std::string& address,
                                                               const ChannelSecurity& security,
                                                               const grpc::ChannelArguments& args) {
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (security.cert_file.empty() != security.key_file.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  if (!security.cert_file.empty() && security.ca_file.empty()) {
    return absl::InvalidArgumentError("--tls-cert needs --tls-ca (the CA of the coordinator's certificate)");
  }
  if (!security.ca_file.empty()) {
    grpc::SslCredentialsOptions ssl;
    ASSIGN_OR_RETURN(auto ca, Read("--tls-ca", security.ca_file));
    ssl.pem_root_certs = ca;
    if (!security.cert_file.empty()) {
      ASSIGN_OR_RETURN(auto cert, Read("--tls-cert", security.cert_file));
      ASSIGN_OR_RETURN(auto key, Read("--tls-key", security.key_file));
      ssl.pem_cert_chain = cert;
      ssl.pem_private_key = key;
    }
    credentials = grpc::SslCredentials(ssl);
  }
  if (security.token.empty()) return grpc::CreateCustomChannel(address, credentials, args);
  std::vector<std::unique_ptr<gx::ClientInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<TokenInterceptorFactory>(security.token));
  return gx::CreateCustomChannelWithInterceptors(address, credentials, args, std::move(interceptors));
}

absl::StatusOr<std::vector<std::string>> SplitCoordinatorAddresses(const std::string& list) {
  std::vector<std::string> out = absl::StrSplit(list, ',');
  for (const std::string& address : out) {
    if (address.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("--coordinator: empty address in '", list, "'"));
    }
  }
  return out;
}

bool TryAnotherCoordinator(const grpc::Status& status) {
  return status.error_code() == grpc::StatusCode::UNAVAILABLE ||
         status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> DialLeader(const std::vector<std::string>& addresses,
                                                          const ChannelSecurity& security,
                                                          const grpc::ChannelArguments& args,
                                                          std::chrono::milliseconds wait) {
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (const std::string& address : addresses) {
    ASSIGN_OR_RETURN(auto channel, DialCoordinator(address, security, args));
    channels.push_back(channel);
  }
  if (channels.size() == 1) return channels.front();
  const auto until = std::chrono::steady_clock::now() + wait;
  do {
    for (const auto& channel : channels) {
      // Any answer but UNAVAILABLE comes from the leader: a job that does not exist is
      // NOT_FOUND there, while a standby refuses every call.
      auto stub = v1::SpriteForge::NewStub(channel);
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
      v1::GetJobRequest request;
      request.set_job_id("leader-probe");
      v1::GetJobResponse response;
      if (!TryAnotherCoordinator(stub->GetJob(&context, request, &response))) return channel;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  } while (std::chrono::steady_clock::now() < until);
  return channels.front();
}

}  // namespace spriteforge
