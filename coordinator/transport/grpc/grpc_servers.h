// The coordinator's gRPC servers. gRPC limits message sizes per server, not per method, so
// clients and workers on one port share the workers' large limit (a result batch carries
// its images): four 250 MB SubmitJob calls held 1.5 GB while they were read. Given a worker
// port of their own, workers keep that limit there while the client port accepts small
// messages only (a manifest is at most 1 MiB) within a memory quota for all client calls.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "coordinator/transport/grpc/client_service.h"
#include "coordinator/transport/access/tls.h"
#include "coordinator/transport/grpc/worker_gateway.h"

namespace spriteforge::coordinator {

constexpr int kWorkerMessageBytes = 256 << 20;  // a batch of 1024x1024 PNGs
constexpr int kClientMessageBytes = 4 << 20;    // with a worker port of its own
constexpr int kClientMemoryBytes = 64 << 20;    // what all client calls may hold at once

struct GrpcServers {
  std::unique_ptr<grpc::Server> client;  // SpriteForge, and the worker gateway without a worker port
  std::unique_ptr<grpc::Server> worker;  // null without a worker port
  int client_port = 0;
  int worker_port = 0;                   // 0 without a worker port

  void Shutdown(std::chrono::system_clock::time_point deadline);
};

// `worker_address` empty: one server on `client_address` for both. Port 0 picks a free one.
// With `tls` every port serves TLS; with its client CA, the port workers use requires a
// client certificate (the shared port too, so there clients need one as well).
absl::StatusOr<GrpcServers> StartGrpcServers(const std::string& client_address, const std::string& worker_address,
                                             ClientService* client, WorkerGatewayService* gateway,
                                             TlsMaterial* tls = nullptr);

// Whether HOST:PORT can be listened on now: an error naming `address` when something
// listens there already. Checked before the coordinator opens its database, so a second
// coordinator on a used port creates no files and gRPC logs no bind failure of its own.
// Port 0, unix: sockets and names that do not resolve pass (the real bind reports on them).
absl::Status CheckAddressFree(const std::string& address, const std::string& what);

}  // namespace spriteforge::coordinator
