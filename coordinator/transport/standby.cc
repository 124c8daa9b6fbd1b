#include "coordinator/transport/standby.h"

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <sys/socket.h>

#include "absl/strings/str_cat.h"

namespace spriteforge::coordinator {

// Any method, any message: the call ends at once with UNAVAILABLE and the standby's line.
class StandbyServers::RefuseCalls final : public grpc::CallbackGenericService {
 public:
  explicit RefuseCalls(StandbyServers* owner) : owner_(owner) {}
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext*) override {
    class Refusal final : public grpc::ServerGenericBidiReactor {
     public:
      explicit Refusal(const std::string& message) { Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, message)); }
      void OnDone() override { delete this; }
    };
    return new Refusal(owner_->Message());
  }

 private:
  StandbyServers* owner_;
};

StandbyServers::StandbyServers()
    : refuse_client_(std::make_unique<RefuseCalls>(this)), refuse_worker_(std::make_unique<RefuseCalls>(this)) {}

StandbyServers::~StandbyServers() { Stop(); }

void StandbyServers::SetLeader(const std::string& address) {
  std::lock_guard<std::mutex> lock(mu_);
  message_ = absl::StrCat("standby: leader is ", address);
}

std::string StandbyServers::Message() {
  std::lock_guard<std::mutex> lock(mu_);
  return message_;
}

absl::StatusOr<std::unique_ptr<StandbyServers>> StandbyServers::Start(const std::string& client_address,
                                                                     const std::string& worker_address,
                                                                     const std::string& http_host, int http_port,
                                                                     TlsMaterial* tls) {
  std::unique_ptr<StandbyServers> out(new StandbyServers());
  auto serve = [&](const std::string& address, bool workers, RefuseCalls* refuse,
                   int* port) -> std::unique_ptr<grpc::Server> {
    grpc::ServerBuilder builder;
    builder.AddListeningPort(address, tls ? tls->ServerCredentials(workers) : grpc::InsecureServerCredentials(), port);
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    builder.RegisterCallbackGenericService(refuse);
    return builder.BuildAndStart();
  };
  out->client_ = serve(client_address, worker_address.empty(), out->refuse_client_.get(), &out->client_port);
  if (!out->client_ || out->client_port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", client_address, ": address in use or not available"));
  }
  if (!worker_address.empty()) {
    out->worker_ = serve(worker_address, true, out->refuse_worker_.get(), &out->worker_port);
    if (!out->worker_ || out->worker_port == 0) {
      return absl::UnavailableError(absl::StrCat("cannot listen on ", worker_address, ": address in use or not available"));
    }
  }
  if (tls) {
    out->http_ = std::make_unique<httplib::SSLServer>([tls](SSL_CTX& ctx) { return tls->SetupHttp(ctx); });
  } else {
    out->http_ = std::make_unique<httplib::Server>();
  }
  out->http_->set_socket_options([](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  StandbyServers* self = out.get();
  out->http_->set_pre_routing_handler([self](const httplib::Request&, httplib::Response& res) {
    res.status = 503;
    res.set_header("Retry-After", "1");
    res.set_content(self->Message() + "\n", "text/plain");
    return httplib::Server::HandlerResponse::Handled;
  });
  const int bound = http_port == 0 ? out->http_->bind_to_any_port(http_host)
                                   : (out->http_->bind_to_port(http_host, http_port) ? http_port : -1);
  if (bound < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen for HTTP on ", http_host, ":", http_port, ": address in use or not available"));
  }
  out->http_port = bound;
  out->http_thread_ = std::thread([self] { self->http_->listen_after_bind(); });
  return out;
}

void StandbyServers::Stop() {
  const auto deadline = std::chrono::system_clock::now() + std::chrono::milliseconds(200);
  if (client_) client_->Shutdown(deadline);
  if (worker_) worker_->Shutdown(deadline);
  client_.reset();
  worker_.reset();
  if (http_) http_->stop();
  if (http_thread_.joinable()) http_thread_.join();
  http_.reset();
}

}  // namespace spriteforge::coordinator
