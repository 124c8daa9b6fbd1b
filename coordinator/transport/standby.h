// What a standby coordinator serves until it leads: every gRPC call (clients and workers)
// ends UNAVAILABLE and every HTTP request 503, with one line naming the leader, so clients
// and workers given several coordinators move on to the next. The ports are the ones the
// coordinator serves on once it leads; it stops these first and binds them again.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "coordinator/transport/access/tls.h"

namespace httplib {
class Server;
}
namespace grpc {
class Server;
}

namespace spriteforge::coordinator {

class StandbyServers {
 public:
  // Port 0 in an address picks a free port; the bound ones are below.
  static absl::StatusOr<std::unique_ptr<StandbyServers>> Start(const std::string& client_address,
                                                               const std::string& worker_address,
                                                               const std::string& http_host, int http_port,
                                                               TlsMaterial* tls);
  ~StandbyServers();
  void Stop();

  // The answer's line: "standby: leader is ADDRESS" (or that none leads yet).
  void SetLeader(const std::string& address);
  std::string Message();

  int client_port = 0;
  int worker_port = 0;  // 0 without a worker address
  int http_port = 0;

 private:
  class RefuseCalls;
  StandbyServers();
  std::mutex mu_;
  std::string message_ = "standby: no coordinator leads yet; retry shortly";
  // One per server: gRPC binds a generic service to a single server.
  std::unique_ptr<RefuseCalls> refuse_client_, refuse_worker_;
  std::unique_ptr<grpc::Server> client_, worker_;
  std::unique_ptr<httplib::Server> http_;
  std::thread http_thread_;
};

}  // namespace spriteforge::coordinator
