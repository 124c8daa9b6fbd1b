// spriteforge-coordinator: accepts jobs from clients, dispatches batches to workers,
// stores results.
//
//   spriteforge-coordinator --listen HOST:PORT --db FILE --output DIR --http HOST:PORT
//       [--lease-seconds N] [--max-attempts N] [--max-prefetch N] [--ready-file FILE]
//       [--worker-listen HOST:PORT]
//
// Port 0 picks a free port; --ready-file receives {"grpc": "HOST:PORT", "http": "HOST:PORT"}
// (and "worker_grpc" with --worker-listen) once all are serving (scripts and tests wait for
// it). --worker-listen serves workers on their own port, so client calls are limited to
// small messages (4 MiB) while worker streams keep room for batches of images (256 MiB).
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
#include "service/grpc_servers.h"
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
    "  [--ready-file FILE] [--worker-listen HOST:PORT]\n";

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
                                          "--max-attempts", "--max-prefetch", "--ready-file", "--worker-listen"},
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
  auto servers = sc::StartGrpcServers(flags->Get("--listen"), flags->Get("--worker-listen"), &client_service, &gateway);
  if (!servers.ok()) return Fail(std::string(servers.status().message()));
  auto http = sc::HttpEndpoint::Start(core->get(), http_host, http_port);
  if (!http.ok()) return Fail(std::string(http.status().message()));

  const std::string listen = flags->Get("--listen");
  const std::string grpc_addr = absl::StrCat(listen.substr(0, listen.rfind(':')), ":", servers->client_port);
  const std::string http_addr = absl::StrCat(http_host, ":", (*http)->port());
  std::string ready_worker_addr;
  spdlog::info("serving gRPC on {}, HTTP on {} (/metrics, /stats, /healthz); results in {}", grpc_addr,
               http_addr, options.output_dir);
  if (servers->worker) {
    const std::string workers = flags->Get("--worker-listen");
    ready_worker_addr = absl::StrCat(workers.substr(0, workers.rfind(':')), ":", servers->worker_port);
    spdlog::info("serving workers on {}; client messages limited to {} MiB", ready_worker_addr,
                 sc::kClientMessageBytes >> 20);
  }
  if (flags->Has("--ready-file")) {
    nlohmann::json ready = {{"grpc", grpc_addr}, {"http", http_addr}};
    if (!ready_worker_addr.empty()) ready["worker_grpc"] = ready_worker_addr;
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
  servers->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  return 0;
}
