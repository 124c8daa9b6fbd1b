// spriteforge-coordinator: accepts jobs from clients, dispatches batches to workers,
// stores results.
//
//   spriteforge-coordinator --listen HOST:PORT --db FILE --output DIR --http HOST:PORT
//       [--lease-seconds N] [--max-attempts N] [--max-prefetch N] [--unserved-model-timeout S]
//       [--ready-file FILE] [--worker-listen HOST:PORT] [--log-level LEVEL] [--log-format text|json]
//       [--blob-dir DIR] [--max-lora-mb N] [--max-image-mb N] [--max-images-per-job N]
//       [--result-threads N]
//
// Files that manifests name by path (LoRAs, img2img start images) are uploaded by the
// client and kept in --blob-dir by content hash (default: "blobs" beside the database).
//
// Every flag can come from SPRITEFORGE_<FLAG> instead (SPRITEFORGE_LISTEN, ...). Port 0
// picks a free port; --ready-file receives {"grpc": "HOST:PORT", "http": "HOST:PORT"} (and
// "worker_grpc" with --worker-listen) once all are serving (scripts and tests wait for it).
// --worker-listen serves workers on their own port, so client calls are limited to small
// messages (4 MiB) while worker streams keep room for batches of images (256 MiB). A port
// another process holds is an error, so a second coordinator on the same address refuses
// to start.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
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
#include "spriteforge/common/cli.h"
#include "spriteforge/common/logging.h"
#include "store/store.h"

namespace sc = spriteforge::coordinator;

namespace {

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
  CLI::App app("spriteforge-coordinator: accepts sprite jobs from clients, hands batches to workers, "
               "stores the results.",
               "spriteforge-coordinator");
  spriteforge::cli::Configure(app);
  std::string listen, worker_listen, db, http_address, ready_file;
  int lease_seconds = 15, max_attempts = 3, max_prefetch = 1;
  double unserved_seconds = 0;
  uint64_t max_lora_mb = 2048, max_image_mb = 32;
  sc::CoordinatorOptions options;
  spriteforge::LogOptions log;
  app.add_option("--listen", listen, "gRPC address for clients and workers, HOST:PORT (port 0: any free port)")
      ->required();
  app.add_option("--http", http_address, "Address of /metrics, /stats and /healthz, HOST:PORT (port 0: any free port)")
      ->required();
  app.add_option("--db", db, "SQLite database of jobs and items (created; reopened after a restart)")->required();
  app.add_option("--output", options.output_dir, "Folder the results are written to (created)")->required();
  app.add_option("--lease-seconds", lease_seconds,
                 "A batch whose worker stays silent this long returns to the queue")
      ->check(CLI::Range(1, 86400));
  app.add_option("--max-attempts", max_attempts, "Tries of an item before it fails for good")
      ->check(CLI::Range(1, 100));
  app.add_option("--max-prefetch", max_prefetch,
                 "Batches queued ahead per worker, beyond the one it renders (capped by what it asks for)")
      ->check(CLI::Range(0, 4));
  app.add_option("--unserved-model-timeout", unserved_seconds,
                 "Seconds a job waits for a worker serving its model before its queued items fail "
                 "(0: wait forever)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--worker-listen", worker_listen,
                 "Serve workers on this HOST:PORT of their own; client calls then take small messages only");
  app.add_option("--blob-dir", options.blob_dir,
                 "Folder of files uploaded with jobs, by content hash (default: blobs beside --db)");
  app.add_option("--max-lora-mb", max_lora_mb, "Largest LoRA a client may upload, in MiB")
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--max-image-mb", max_image_mb, "Largest start image a client may upload, in MiB")
      ->check(CLI::Range(1, 1 << 16));
  app.add_option("--ready-file", ready_file, "Written with the bound addresses, as JSON, once serving");
  app.add_option("--max-images-per-job", options.limits.max_images_per_job,
                 "Largest job a manifest may describe, in images")
      ->check(CLI::Range(1, 100000000));
  // Checking a result decodes its PNGs: the costliest work per image, spread over the cores.
  options.result_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  app.add_option("--result-threads", options.result_threads,
                 "Threads that check and store results (default: one per core)")
      ->check(CLI::Range(1, 256));
  spriteforge::cli::AddLogFlags(app, &log);
  spriteforge::cli::ReadEnvironment(app);
  if (int code = spriteforge::cli::Parse(app, argc, argv); code >= 0) return code;
  if (auto s = spriteforge::ConfigureLogging(log); !s.ok()) return Fail(std::string(s.message()), 2);

  std::string http_host;
  int http_port = 0;
  if (!SplitHostPort(http_address, &http_host, &http_port)) {
    return Fail("--http: expected HOST:PORT, got '" + http_address + "'", 2);
  }
  options.lease_ms = lease_seconds * 1000LL;
  options.max_attempts = max_attempts;
  options.max_prefetch = max_prefetch;
  options.unserved_model_timeout_ms = static_cast<int64_t>(unserved_seconds * 1000);
  options.upload_limits.max_lora_bytes = max_lora_mb << 20;
  options.upload_limits.max_image_bytes = max_image_mb << 20;
  if (options.blob_dir.empty()) {
    options.blob_dir = (std::filesystem::absolute(db).parent_path() / "blobs").string();
  }

  auto store = sc::Store::Open(db);
  if (!store.ok()) return Fail(std::string(store.status().message()));
  auto core = sc::Coordinator::Create(std::move(*store), options);
  if (!core.ok()) return Fail(std::string(core.status().message()));

  sc::ClientService client_service(core->get());
  sc::WorkerGatewayService gateway(core->get());
  auto servers = sc::StartGrpcServers(listen, worker_listen, &client_service, &gateway);
  if (!servers.ok()) return Fail(std::string(servers.status().message()));
  auto http = sc::HttpEndpoint::Start(core->get(), http_host, http_port);
  if (!http.ok()) return Fail(std::string(http.status().message()));

  const std::string grpc_addr = absl::StrCat(listen.substr(0, listen.rfind(':')), ":", servers->client_port);
  const std::string http_addr = absl::StrCat(http_host, ":", (*http)->port());
  std::string ready_worker_addr;
  spdlog::info("serving gRPC on {}, HTTP on {} (web page at /, API at /v1 and /sdapi/v1, /metrics, /stats, "
               "/healthz); results in {}", grpc_addr, http_addr, options.output_dir);
  if (servers->worker) {
    ready_worker_addr = absl::StrCat(worker_listen.substr(0, worker_listen.rfind(':')), ":", servers->worker_port);
    spdlog::info("serving workers on {}; client messages limited to {} MiB", ready_worker_addr,
                 sc::kClientMessageBytes >> 20);
  }
  if (!ready_file.empty()) {
    nlohmann::json ready = {{"grpc", grpc_addr}, {"http", http_addr}};
    if (!ready_worker_addr.empty()) ready["worker_grpc"] = ready_worker_addr;
    if (auto s = spriteforge::WriteFileAtomic(ready_file, ready.dump() + "\n"); !s.ok()) {
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
