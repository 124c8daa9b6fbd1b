#include "common/rpc/channel.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/support/client_interceptor.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "common/files.h"

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
    auto ca = Read("--tls-ca", security.ca_file);
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *ca;
    if (!security.cert_file.empty()) {
      auto cert = Read("--tls-cert", security.cert_file);
      if (!cert.ok()) return cert.status();
      auto key = Read("--tls-key", security.key_file);
      if (!key.ok()) return key.status();
      ssl.pem_cert_chain = *cert;
      ssl.pem_private_key = *key;
    }
    credentials = grpc::SslCredentials(ssl);
  }
  if (security.token.empty()) return grpc::CreateCustomChannel(address, credentials, args);
  std::vector<std::unique_ptr<gx::ClientInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<TokenInterceptorFactory>(security.token));
  return gx::CreateCustomChannelWithInterceptors(address, credentials, args, std::move(interceptors));
}

}  // namespace spriteforge
