#include "coordinator/transport/grpc/grpc_servers.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <vector>

#include "absl/strings/str_cat.h"

namespace spriteforge::coordinator {
namespace {

std::unique_ptr<grpc::Server> Start(const std::string& address, int max_receive_bytes,
                                    const std::vector<grpc::Service*>& services,
                                    std::shared_ptr<grpc::ServerCredentials> credentials, int* port) {
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, credentials, port);
  // gRPC shares ports (SO_REUSEPORT) by default: a second coordinator would start and take
  // half the calls. Refuse a port in use instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  for (grpc::Service* s : services) builder.RegisterService(s);
  builder.SetMaxReceiveMessageSize(max_receive_bytes);
  if (max_receive_bytes == kClientMessageBytes) {
    // gRPC reads a whole message before it applies the size limit; the quota bounds what
    // all client connections may hold meanwhile (beyond it, streams are reset).
    grpc::ResourceQuota quota("client calls");
    quota.Resize(kClientMemoryBytes);
    builder.SetResourceQuota(quota);
  }
  builder.SetMaxSendMessageSize(kWorkerMessageBytes);  // results are fetched in large files
  // Detect dead workers behind silent networks too, not only closed sockets.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  return builder.BuildAndStart();
}

}  // namespace

void GrpcServers::Shutdown(std::chrono::system_clock::time_point deadline) {
  if (client) client->Shutdown(deadline);
  if (worker) worker->Shutdown(deadline);
}

absl::StatusOr<GrpcServers> StartGrpcServers(const std::string& client_address, const std::string& worker_address,
                                             ClientService* client, WorkerGatewayService* gateway,
                                             TlsMaterial* tls) {
  auto credentials = [tls](bool workers) {
    return tls ? tls->ServerCredentials(workers) : grpc::InsecureServerCredentials();
  };
  GrpcServers servers;
  if (worker_address.empty()) {
    servers.client =
        Start(client_address, kWorkerMessageBytes, {client, gateway}, credentials(true), &servers.client_port);
  } else {
    servers.client = Start(client_address, kClientMessageBytes, {client}, credentials(false), &servers.client_port);
    servers.worker = Start(worker_address, kWorkerMessageBytes, {gateway}, credentials(true), &servers.worker_port);
    if (!servers.worker || servers.worker_port == 0) {
      servers.Shutdown(std::chrono::system_clock::now());
      return absl::UnavailableError(
          absl::StrCat("cannot listen on ", worker_address, ": address in use (another coordinator?) or not available"));
    }
  }
  if (!servers.client || servers.client_port == 0) {
    servers.Shutdown(std::chrono::system_clock::now());
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", client_address, ": address in use (another coordinator?) or not available"));
  }
  return servers;
}

absl::Status CheckAddressFree(const std::string& address, const std::string& what) {
  const size_t colon = address.rfind(':');
  if (address.rfind("unix:", 0) == 0 || colon == std::string::npos) return absl::OkStatus();
  std::string host = address.substr(0, colon);
  const std::string port = address.substr(colon + 1);
  if (port == "0") return absl::OkStatus();
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &found) != 0) return absl::OkStatus();
  bool in_use = false;
  const int fd = socket(found->ai_family, found->ai_socktype | SOCK_CLOEXEC, found->ai_protocol);
  if (fd >= 0) {
    const int one = 1;  // as the servers bind: a port in TIME_WAIT is free, a listening one is not
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    in_use = bind(fd, found->ai_addr, found->ai_addrlen) != 0 && errno == EADDRINUSE;
    close(fd);
  }
  freeaddrinfo(found);
  if (!in_use) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat("cannot listen", what, " on ", address, ": address in use (another coordinator?)"));
}

}  // namespace spriteforge::coordinator
