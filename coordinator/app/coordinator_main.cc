// spriteforge-coordinator: accepts jobs from clients, dispatches batches to workers,
// stores results.
//
//   spriteforge-coordinator --listen HOST:PORT --db FILE --output DIR --http HOST:PORT
//       [--lease-seconds N] [--max-attempts N] [--max-prefetch N] [--ready-file FILE]
//
// Port 0 picks a free port; --ready-file receives {"grpc": "HOST:PORT", "http": "HOST:PORT"}
// once both are serving (scripts and tests wait for it).
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <thread>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "service/client_service.h"
#include "service/coordinator.h"
#include "service/http_endpoint.h"
#include "service/worker_gateway.h"
#include "spdlog/spdlog.h"
#include "spriteforge/common/files.h"
#include "spriteforge/common/flags.h"
#include "store/store.h"

namespace sc = spriteforge::coordinator;

namespace {

constexpr char kUsage[] =
    "usage: spriteforge-coordinator --listen HOST:PORT --db FILE --output DIR --http HOST:PORT\n"
    "  [--lease-seconds N] [--max-attempts N] [--max-prefetch N (batches queued ahead per worker, default 1)]\n"
    "  [--ready-file FILE]\n";

std::atomic<bool> g_stop{false};

int Fail(const std::string& message, int code = 1) {
  std::fprintf(stderr, "spriteforge-coordinator: error: %s\n", message.c_str());
  return code;
}

bool SplitHostPort(const std::string& s, std::string* host, int* port) {
  const size_t colon = s.rfind(':');
  if (colon == std::string::npos) return false;
  *host = s.substr(0, colon);
  return absl::SimpleAtoi(s.substr(colon + 1), port) && *port >= 0 && *port < 65536 && !host->empty();
}

}  // namespace

int main(int argc, char** argv) {
  auto flags = spriteforge::Flags::Parse(std::vector<std::string>(argv + 1, argv + argc),
                                         {"--listen", "--db", "--output", "--http", "--lease-seconds",
                                          "--max-attempts", "--max-prefetch", "--ready-file"},
                                         {"--help"});
  if (!flags.ok()) return Fail(absl::StrCat(flags.status().message(), "\n", kUsage), 2);
  if (flags->Has("--help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  for (const char* required : {"--listen", "--db", "--output", "--http"}) {
    if (!flags->Has(required)) return Fail(absl::StrCat(required, " is required\n", kUsage), 2);
  }
  std::string http_host;
  int http_port = 0;
  if (!SplitHostPort(flags->Get("--http"), &http_host, &http_port)) {
    return Fail("--http: expected HOST:PORT, got '" + flags->Get("--http") + "'", 2);
  }
  sc::CoordinatorOptions options;
  options.output_dir = flags->Get("--output");
  auto lease = flags->GetInt("--lease-seconds", 15);
  auto attempts = flags->GetInt("--max-attempts", 3);
  if (!lease.ok() || *lease < 1) return Fail("--lease-seconds must be a positive integer", 2);
  if (!attempts.ok() || *attempts < 1) return Fail("--max-attempts must be a positive integer", 2);
  options.lease_ms = *lease * 1000LL;
  auto prefetch = flags->GetInt("--max-prefetch", 1);
  if (!prefetch.ok() || *prefetch < 0 || *prefetch > 4) return Fail("--max-prefetch must be in 0..4", 2);
  options.max_prefetch = *prefetch;
  options.max_attempts = *attempts;

  auto store = sc::Store::Open(flags->Get("--db"));
  if (!store.ok()) return Fail(std::string(store.status().message()));
  auto core = sc::Coordinator::Create(std::move(*store), options);
  if (!core.ok()) return Fail(std::string(core.status().message()));

  sc::ClientService client_service(core->get());
  sc::WorkerGatewayService gateway(core->get());
  grpc::ServerBuilder builder;
  int grpc_port = 0;
  builder.AddListeningPort(flags->Get("--listen"), grpc::InsecureServerCredentials(), &grpc_port);
  builder.RegisterService(&client_service);
  builder.RegisterService(&gateway);
  builder.SetMaxReceiveMessageSize(256 << 20);  // batches of 1024x1024 PNGs
  builder.SetMaxSendMessageSize(256 << 20);
  // Detect dead workers behind silent networks too, not only closed sockets.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || grpc_port == 0) return Fail("cannot listen on " + flags->Get("--listen"));
  auto http = sc::HttpEndpoint::Start(core->get(), http_host, http_port);
  if (!http.ok()) return Fail(std::string(http.status().message()));

  const std::string listen = flags->Get("--listen");
  const std::string grpc_addr = absl::StrCat(listen.substr(0, listen.rfind(':')), ":", grpc_port);
  const std::string http_addr = absl::StrCat(http_host, ":", (*http)->port());
  spdlog::info("serving gRPC on {}, HTTP on {} (/metrics, /stats, /healthz); results in {}", grpc_addr,
               http_addr, options.output_dir);
  if (flags->Has("--ready-file")) {
    nlohmann::json ready = {{"grpc", grpc_addr}, {"http", http_addr}};
    if (auto s = spriteforge::WriteFileAtomic(flags->Get("--ready-file"), ready.dump() + "\n"); !s.ok()) {
      return Fail(std::string(s.message()));
    }
  }

  std::signal(SIGINT, [](int) { g_stop = true; });
  std::signal(SIGTERM, [](int) { g_stop = true; });
  while (!g_stop) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    (*core)->Tick();
  }
  spdlog::info("shutting down");
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  return 0;
}
