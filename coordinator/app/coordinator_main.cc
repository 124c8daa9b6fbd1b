// spriteforge-coordinator: accepts jobs from clients, dispatches batches to workers,
// stores results.
//
//   spriteforge-coordinator --listen HOST:PORT --db FILE --output DIR --http HOST:PORT
//       [--lease-seconds N] [--max-attempts N] [--max-prefetch N] [--unserved-model-timeout S]
//       [--ready-file FILE] [--worker-listen HOST:PORT] [--log-level LEVEL] [--log-format text|json]
//       [--blob-dir DIR] [--max-lora-mb N] [--max-image-mb N] [--max-images-per-job N]
//       [--result-threads N]
//       [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE]] [--auth FILE] [--submits-per-minute N]
//       [--insecure-listen HOST:PORT (instead of --listen)]
//   spriteforge-coordinator backup --db FILE --out FILE
//
// Files that manifests name by path (LoRAs, img2img start images) are uploaded by the
// client and kept in --blob-dir by content hash (default: "blobs" beside the database).
//
// Without --tls-cert and --auth the gRPC ports serve this machine only (loopback), unless
// --insecure-listen says to serve others anyway. SIGHUP reloads the TLS files and the
// --auth token file. `backup` copies the database consistently while a coordinator runs on it (docs/security.md,
// docs/operations.md).
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
#include "common/cli.h"
#include "common/files.h"
#include "common/logging.h"
#include "coordinator/service/auth.h"
#include "coordinator/service/client_service.h"
#include "coordinator/service/coordinator.h"
#include "coordinator/service/gatekeeper.h"
#include "coordinator/service/grpc_servers.h"
#include "coordinator/service/http_endpoint.h"
#include "coordinator/service/tls.h"
#include "coordinator/service/worker_gateway.h"
#include "coordinator/store/backup.h"
#include "coordinator/store/store.h"
#include "spdlog/spdlog.h"

namespace sc = spriteforge::coordinator;

namespace {

std::atomic<bool> g_stop{false};
std::atomic<bool> g_reload{false};

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

int Backup(int argc, char** argv) {
  CLI::App app("spriteforge-coordinator backup: a consistent copy of the database, also while a coordinator "
               "runs on it (SQLite's online backup; the copy is integrity-checked before it is renamed into place).",
               "spriteforge-coordinator backup");
  spriteforge::cli::Configure(app);
  std::string db, out;
  app.add_option("--db", db, "The coordinator's database")->required();
  app.add_option("--out", out, "The copy to write")->required();
  if (int code = spriteforge::cli::Parse(app, argc, argv); code >= 0) return code;
  auto report = sc::BackupDatabase(db, out);
  if (!report.ok()) return Fail(std::string(report.status().message()));
  std::printf("%s: %d pages, %lld bytes, integrity_check ok\n", out.c_str(), report->pages,
              static_cast<long long>(report->bytes));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "backup") return Backup(argc - 1, argv + 1);
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
  std::string insecure_listen, tls_cert, tls_key, tls_client_ca, auth_file;
  int submits_per_minute = 120;
  app.add_option("--listen", listen,
                 "gRPC address for clients and workers, HOST:PORT (port 0: any free port); loopback only "
                 "without --tls-cert or --auth");
  app.add_option("--insecure-listen", insecure_listen,
                 "Instead of --listen: serve any address in plaintext, without TLS or tokens (private networks)");
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
  app.add_option("--tls-cert", tls_cert, "PEM certificate chain: TLS on the gRPC and HTTP ports (SIGHUP reloads)");
  app.add_option("--tls-key", tls_key, "PEM private key of --tls-cert");
  app.add_option("--tls-client-ca", tls_client_ca, "PEM CA whose client certificates workers must present");
  app.add_option("--auth", auth_file, "YAML token table: names, tokens, roles, quotas (docs/security.md; SIGHUP reloads)");
  app.add_option("--submits-per-minute", submits_per_minute,
                 "SubmitJob calls per minute per client unless its token sets its own (0: no limit)")
      ->check(CLI::NonNegativeNumber);
  spriteforge::cli::AddLogFlags(app, &log);
  spriteforge::cli::ReadEnvironment(app);
  if (int code = spriteforge::cli::Parse(app, argc, argv); code >= 0) return code;
  if (auto s = spriteforge::ConfigureLogging(log); !s.ok()) return Fail(std::string(s.message()), 2);

  const bool insecure = !insecure_listen.empty();
  if (insecure == !listen.empty()) return Fail("one of --listen or --insecure-listen is required", 2);
  if (insecure) listen = insecure_listen;
  std::unique_ptr<sc::TlsMaterial> tls;
  if (!tls_cert.empty() || !tls_key.empty() || !tls_client_ca.empty()) {
    if (insecure) return Fail("--insecure-listen serves plaintext; with --tls-cert use --listen", 2);
    auto loaded = sc::TlsMaterial::Load({tls_cert, tls_key, tls_client_ca}, db + "-tls");
    if (!loaded.ok()) return Fail(std::string(loaded.status().message()), 2);
    tls = std::move(*loaded);
  }
  std::unique_ptr<sc::TokenTable> tokens;
  if (!auth_file.empty()) {
    auto table = sc::TokenTable::Load(auth_file);
    if (!table.ok()) return Fail(std::string(table.status().message()), 2);
    tokens = std::make_unique<sc::TokenTable>(std::move(*table));
  }
  if (!tls && !tokens && !insecure) {
    for (const std::string& address : {listen, worker_listen}) {
      if (!address.empty() && !sc::IsLoopbackAddress(address)) {
        return Fail(absl::StrCat(address, ": without --tls-cert or --auth the coordinator serves this machine only "
                                 "(127.0.0.1, ::1); use --insecure-listen ",
                                 address, " to serve others without them"),
                    2);
      }
    }
  }

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

  if (auto s = sc::CheckDatabaseFile(db); !s.ok()) return Fail(std::string(s.message()));
  auto store = sc::Store::Open(db);
  if (!store.ok()) return Fail(std::string(store.status().message()));
  auto core = sc::Coordinator::Create(std::move(*store), options);
  if (!core.ok()) return Fail(std::string(core.status().message()));

  sc::Gatekeeper gate({tokens.get(), submits_per_minute, tls && tls->has_client_ca()});
  sc::ClientService client_service(core->get(), &gate);
  sc::WorkerGatewayService gateway(core->get(), &gate);
  auto servers = sc::StartGrpcServers(listen, worker_listen, &client_service, &gateway, tls.get());
  if (!servers.ok()) return Fail(std::string(servers.status().message()));
  auto http = sc::HttpEndpoint::Start(core->get(), http_host, http_port, {}, {tls.get(), &gate});
  if (!http.ok()) return Fail(std::string(http.status().message()));

  const std::string grpc_addr = absl::StrCat(listen.substr(0, listen.rfind(':')), ":", servers->client_port);
  const std::string http_addr = absl::StrCat(http_host, ":", (*http)->port());
  std::string ready_worker_addr;
  spdlog::info("serving gRPC on {}, HTTP on {} (web page at /, API at /v1 and /sdapi/v1, /metrics, /stats, "
               "/healthz); results in {}", grpc_addr, http_addr, options.output_dir);
  if (insecure) {
    spdlog::warn("--insecure-listen {}: plaintext{}; anyone who reaches this port can {}", listen,
                 tokens ? ", tokens travel unencrypted" : " and no tokens",
                 tokens ? "read the tokens sent to it" : "submit, cancel and read every job and connect as a worker");
  }
  spdlog::info("security: {}; {}{}", tls ? "TLS" : "plaintext",
               tokens ? absl::StrCat(tokens->size(), " tokens from ", auth_file) : "no tokens",
               tls && tls->has_client_ca() ? "; workers need client certificates" : "");
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
  std::signal(SIGHUP, [](int) { g_reload = true; });
  while (!g_stop) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    (*core)->Tick();
    if (g_reload.exchange(false)) {
      if (tls) {
        if (auto s = tls->Reload(); s.ok()) spdlog::info("SIGHUP: TLS certificate and key reloaded");
        else spdlog::error("SIGHUP: keeping the current TLS files: {}", std::string(s.message()));
      }
      if (tokens) {
        if (auto s = tokens->Reload(auth_file); s.ok()) {
          spdlog::info("SIGHUP: {} tokens reloaded from {}", tokens->size(), auth_file);
        } else {
          spdlog::error("SIGHUP: keeping the current tokens: {}", std::string(s.message()));
        }
      }
    }
  }
  spdlog::info("shutting down");
  servers->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  return 0;
}
