// spriteforge-coordinator: accepts jobs from clients, dispatches batches to workers,
// stores results.
//
//   spriteforge-coordinator --listen HOST:PORT --db FILE --output DIR --http HOST:PORT [--http-host-allow NAME,...]
//       [--lease-seconds N] [--worker-retention-minutes N] [--max-attempts N] [--max-prefetch N] [--unserved-model-timeout S]
//       [--ready-file FILE] [--worker-listen HOST:PORT] [--log-level LEVEL] [--log-format text|json]
//       [--blob-dir DIR] [--max-lora-mb N] [--max-image-mb N] [--max-images-per-job N]
//       [--blob-max-gb N] [--owner-upload-mb N] [--uploads-per-minute N] [--blob-grace-minutes N]
//       [--upload-idle-seconds N]
//       [--result-threads N] [--leader-lease-seconds N]
//       [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE [--worker-cert-match RULE]...]] [--auth FILE]
//       [--submits-per-minute N]
//       [--insecure-listen HOST:PORT (instead of --listen)]
//   spriteforge-coordinator backup --db FILE --out FILE
//
// Files that manifests name by path (LoRAs, img2img start images) are uploaded by the
// client and kept in --blob-dir by content hash (default: "blobs" beside the database).
//
// Without --auth (or, for gRPC, TLS with client certificates) every port serves this
// machine only (loopback), unless --insecure-listen says to serve others anyway
// (transport/access/exposure.h). SIGHUP reloads the TLS files and the
// --auth token file. `backup` copies the database consistently while a coordinator runs on it (docs/security.md,
// docs/operations.md).
//
// --db is a SQLite file (the default backend) or a postgresql://USER@HOST/DB URL. Several
// coordinators may share one PostgreSQL database: one leads (a lease row it renews every
// second), the others stand by, answering every call UNAVAILABLE "standby: leader is
// ADDRESS", and the first to see the lease lapse takes over with the recovery a restart
// runs. Workers and clients given all the addresses move to the leader (docs/scale.md).
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

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/cli.h"
#include "common/files.h"
#include "common/logging.h"
#include "coordinator/transport/access/auth.h"
#include "coordinator/transport/grpc/client_service.h"
#include "coordinator/core/coordinator.h"
#include "coordinator/transport/access/exposure.h"
#include "coordinator/transport/access/gatekeeper.h"
#include "coordinator/transport/grpc/grpc_servers.h"
#include "coordinator/transport/http/http_endpoint.h"
#include "coordinator/core/leader.h"
#include "coordinator/transport/standby.h"
#include "coordinator/transport/access/tls.h"
#include "coordinator/transport/grpc/worker_gateway.h"
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

// --ready-file: where this process serves and in which role ("leader" or "standby").
absl::Status WriteReadyFile(const std::string& path, const std::string& grpc, const std::string& http,
                            const std::string& worker_grpc, const char* role) {
  nlohmann::json ready = {{"grpc", grpc}, {"http", http}, {"role", role}};
  if (!worker_grpc.empty()) ready["worker_grpc"] = worker_grpc;
  return spriteforge::WriteFileAtomic(path, ready.dump() + "\n");
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
  if (sc::IsPostgresUrl(db)) return Fail("backup copies SQLite files; back up a PostgreSQL database with pg_dump", 2);
  auto report = sc::BackupDatabase(db, out);
  if (!report.ok()) return Fail(std::string(report.status().message()));
  std::printf("%s: %d pages, %lld bytes, integrity_check ok\n", out.c_str(), report->pages,
              static_cast<long long>(report->bytes));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  spriteforge::InstallCrashReporting(argv[0]);
  if (argc > 1 && std::string(argv[1]) == "backup") return Backup(argc - 1, argv + 1);
  CLI::App app("spriteforge-coordinator: accepts sprite jobs from clients, hands batches to workers, "
               "stores the results.",
               "spriteforge-coordinator");
  spriteforge::cli::Configure(app);
  // `backup` is dispatched before this parser sees argv; the footer keeps it visible.
  app.footer("Commands:\n  backup --db FILE --out FILE  A consistent copy of the database, also while a "
             "coordinator runs on it (see spriteforge-coordinator backup --help)");
  std::string listen, worker_listen, db, http_address, ready_file;
  int lease_seconds = 15, max_attempts = 3, max_prefetch = 1;
  int worker_retention_minutes = 60;
  double unserved_seconds = 0;
  uint64_t max_lora_mb = 2048, max_image_mb = 32;
  // Uploads' share of the disk (results keep the rest) and their pace.
  double blob_max_gb = 100, blob_grace_minutes = 60;
  uint64_t owner_upload_mb = 20480;
  int uploads_per_minute = 600, upload_idle_seconds = 60;
  sc::CoordinatorOptions options;
  spriteforge::LogOptions log;
  std::string insecure_listen, tls_cert, tls_key, tls_client_ca, auth_file;
  std::vector<std::string> worker_cert_match;
  int submits_per_minute = 120;
  int leader_lease_seconds = 5;
  app.add_option("--listen", listen,
                 "gRPC address for clients and workers, HOST:PORT (port 0: any free port); loopback only "
                 "without --tls-cert or --auth");
  app.add_option("--insecure-listen", insecure_listen,
                 "Instead of --listen: serve any address in plaintext, without TLS or tokens (private networks); "
                 "lets --http serve other machines without tokens too");
  app.add_option("--http", http_address,
                 "Address of the web page, the HTTP API, /metrics, /stats and /healthz, HOST:PORT (port 0: any free "
                 "port); loopback only without --auth")
      ->required();
  std::vector<std::string> http_host_allow;
  app.add_option("--http-host-allow", http_host_allow,
                 "Host names the HTTP port answers to besides IP addresses, localhost, this machine's name and the "
                 "--http address (other names are refused: browsers on a rebound DNS name), comma-separated")
      ->delimiter(',');
  app.add_option("--db", db,
                 "Database of jobs and items: a SQLite file (created; reopened after a restart) or a "
                 "postgresql://USER@HOST[:PORT]/DB URL several coordinators can share (one leads, the others stand by)")
      ->required();
  app.add_option("--output", options.output_dir, "Folder the results are written to (created)")->required();
  app.add_option("--lease-seconds", lease_seconds,
                 "A batch whose worker stays silent this long returns to the queue")
      ->check(CLI::Range(1, 86400));
  app.add_option("--worker-retention-minutes", worker_retention_minutes,
                 "A disconnected worker is forgotten (worker list, /metrics, database) once unheard this long; "
                 "its results stay")
      ->check(CLI::Range(1, 525600));
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
  app.add_option("--blob-max-gb", blob_max_gb,
                 "Most the uploaded files may take of --blob-dir, in GB; an upload that would pass it is refused "
                 "(0: no limit)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--owner-upload-mb", owner_upload_mb,
                 "Uploaded files each client may hold, in MiB, unless its token sets max_upload_mb (0: no limit)");
  app.add_option("--uploads-per-minute", uploads_per_minute,
                 "Uploads per minute per client unless its token sets its own (0: no limit)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--blob-grace-minutes", blob_grace_minutes,
                 "An uploaded file no unfinished job names is deleted once unused this long")
      ->check(CLI::Range(1.0, 525600.0));
  app.add_option("--upload-idle-seconds", upload_idle_seconds,
                 "An upload that sends nothing this long is cancelled and its partial file removed")
      ->check(CLI::Range(1, 86400));
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
  app.add_option("--worker-cert-match", worker_cert_match,
                 "Which client certificates are workers': OU=NAME, CN=NAME, O=NAME, URI:NAME or DNS:NAME (repeatable; "
                 "with --auth a certificate admits a worker only if it matches one)");
  app.add_option("--auth", auth_file, "YAML token table: names, tokens, roles, quotas (docs/security.md; SIGHUP reloads)");
  app.add_option("--submits-per-minute", submits_per_minute,
                 "SubmitJob calls per minute per client unless its token sets its own (0: no limit)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--leader-lease-seconds", leader_lease_seconds,
                 "With PostgreSQL: how long the leader's lease lasts unrenewed (renewed every second); a standby "
                 "takes over this long after the leader stops")
      ->check(CLI::Range(2, 600));
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
    // Private copies of the key: beside a SQLite file, else in this machine's temporary
    // folder (never in a results folder other machines share).
    const std::string tls_dir =
        sc::IsPostgresUrl(db)
            ? (std::filesystem::temp_directory_path() / absl::StrCat("spriteforge-coordinator-tls-", getpid())).string()
            : db + "-tls";
    auto loaded = sc::TlsMaterial::Load({tls_cert, tls_key, tls_client_ca}, tls_dir);
    if (!loaded.ok()) return Fail(std::string(loaded.status().message()), 2);
    tls = std::move(*loaded);
  }
  std::vector<sc::WorkerCertificateRule> worker_rules;
  for (const std::string& text : worker_cert_match) {
    auto rule = sc::ParseWorkerCertificateRule(text);
    if (!rule.ok()) return Fail(std::string(rule.status().message()), 2);
    worker_rules.push_back(*rule);
  }
  if (!worker_rules.empty() && !(tls && tls->has_client_ca())) {
    return Fail("--worker-cert-match needs --tls-client-ca: it names which client certificates are workers'", 2);
  }
  std::unique_ptr<sc::TokenTable> tokens;
  if (!auth_file.empty()) {
    auto table = sc::TokenTable::Load(auth_file);
    if (!table.ok()) return Fail(std::string(table.status().message()), 2);
    tokens = std::make_unique<sc::TokenTable>(std::move(*table));
  }
  const sc::Exposure exposure{listen, worker_listen, http_address, insecure, tls != nullptr,
                               tls && tls->has_client_ca(), tokens != nullptr};
  if (auto s = sc::CheckExposure(exposure); !s.ok()) return Fail(std::string(s.message()), 2);

  std::string http_host;
  int http_port = 0;
  if (!SplitHostPort(http_address, &http_host, &http_port)) {
    return Fail("--http: expected HOST:PORT, got '" + http_address + "'", 2);
  }
  options.lease_ms = lease_seconds * 1000LL;
  options.worker_retention_ms = worker_retention_minutes * 60000LL;
  options.max_attempts = max_attempts;
  options.max_prefetch = max_prefetch;
  options.unserved_model_timeout_ms = static_cast<int64_t>(unserved_seconds * 1000);
  options.upload_limits.max_lora_bytes = max_lora_mb << 20;
  options.upload_limits.max_image_bytes = max_image_mb << 20;
  options.blob_max_bytes = static_cast<uint64_t>(blob_max_gb * 1e9);
  options.owner_upload_bytes = owner_upload_mb << 20;
  options.uploads_per_minute = uploads_per_minute;
  options.blob_grace_ms = static_cast<int64_t>(blob_grace_minutes * 60000);
  options.upload_idle_ms = upload_idle_seconds * 1000LL;
  const bool shared_db = sc::IsPostgresUrl(db);
  if (options.blob_dir.empty() && !shared_db) {
    options.blob_dir = (std::filesystem::absolute(db).parent_path() / "blobs").string();
  }  // with PostgreSQL: "blobs" beside --output, so coordinators sharing that folder share it

  // Ports before the store: a second coordinator on a used port leaves no files behind.
  for (const auto& [address, what] : {std::pair{listen, ""}, {worker_listen, " for workers"},
                                      {http_address, " for HTTP"}}) {
    if (address.empty()) continue;
    if (auto s = sc::CheckAddressFree(address, what); !s.ok()) return Fail(std::string(s.message()));
  }
  if (!shared_db) {
    if (auto s = sc::CheckDatabaseFile(db); !s.ok()) return Fail(std::string(s.message()));
  }
  auto store = sc::Store::Open(db);
  if (!store.ok()) return Fail(std::string(store.status().message()));

  std::signal(SIGINT, [](int) { g_stop = true; });
  std::signal(SIGTERM, [](int) { g_stop = true; });
  std::signal(SIGHUP, [](int) { g_reload = true; });
  // A shared database: stand by until this coordinator holds the leader lease.
  std::unique_ptr<sc::LeaderLeaseKeeper> leader;
  if (shared_db) {
    auto own = sc::Store::Open(db);  // the lease's own connection
    if (!own.ok()) return Fail(std::string(own.status().message()));
    auto standby = sc::StandbyServers::Start(listen, worker_listen, http_host, http_port, tls.get());
    if (!standby.ok()) return Fail(std::string(standby.status().message()));
    const std::string host = listen.substr(0, listen.rfind(':'));
    char hostname[256] = {};
    gethostname(hostname, sizeof hostname - 1);
    // Told to clients by standbys: a wildcard address names this machine instead.
    const bool wildcard = host == "0.0.0.0" || host == "[::]" || host == "::";
    sc::LeaderOptions lead;
    lead.address = absl::StrCat(wildcard ? hostname : host, ":", (*standby)->client_port);
    lead.id = absl::StrCat(hostname, ":", getpid(), ":", lead.address);
    lead.lease_ms = leader_lease_seconds * 1000LL;
    // Later binds reuse the ports the standby picked, so the ready file stays true.
    listen = absl::StrCat(host, ":", (*standby)->client_port);
    if (!worker_listen.empty()) {
      worker_listen = absl::StrCat(worker_listen.substr(0, worker_listen.rfind(':')), ":", (*standby)->worker_port);
    }
    http_port = (*standby)->http_port;
    spdlog::info("on {} (HTTP {}:{}): waiting for the leader lease in {} ({})", listen, http_host, http_port,
                 (*store)->Backend(), lead.id);
    leader = std::make_unique<sc::LeaderLeaseKeeper>(std::move(*own), lead);
    std::string followed;
    absl::Status ready_written = absl::OkStatus();
    auto waited = leader->WaitToLead(g_stop, [&](const sc::LeaderLease& lease) {
      (*standby)->SetLeader(lease.address);
      if (lease.holder != followed) spdlog::info("standby: leader is {} ({})", lease.address, lease.holder);
      // Written once it is clear another leads: a coordinator that leads at once writes
      // only the leader's ready file, so whoever waits for it never meets the standby.
      if (followed.empty() && !ready_file.empty()) {
        ready_written = WriteReadyFile(ready_file, listen, absl::StrCat(http_host, ":", http_port), worker_listen,
                                       "standby");
      }
      followed = lease.holder;
    });
    if (!ready_written.ok()) return Fail(std::string(ready_written.message()));
    (*standby)->Stop();
    if (!waited.ok()) {
      spdlog::info("shutting down");
      return 0;
    }
    spdlog::info("leading: holding the leader lease ({} s, epoch {}) in {}", leader_lease_seconds, leader->epoch(),
                 (*store)->Backend());
    // Every write of this coordinator checks the epoch in its own transaction: a leader
    // paused past its lease (SIGSTOP, a long GC-like stall, a VM migration) that wakes after a
    // takeover writes nothing and exits, as on a lost lease.
    (*store)->SetFencingEpoch(leader->epoch(), [](const absl::Status& fenced) {
      spdlog::critical("stepping down: {}; exiting so the new leader leads alone", std::string(fenced.message()));
      spdlog::shutdown();
      std::_Exit(3);
    });
  }
  const auto recovery_start = std::chrono::steady_clock::now();
  auto core = sc::Coordinator::Create(std::move(*store), options);
  if (!core.ok()) return Fail(std::string(core.status().message()));

  sc::Gatekeeper gate({tokens.get(), submits_per_minute, tls && tls->has_client_ca(), worker_rules});
  sc::ClientService client_service(core->get(), &gate);
  sc::WorkerGatewayService gateway(core->get(), &gate);
  auto servers = sc::StartGrpcServers(listen, worker_listen, &client_service, &gateway, tls.get());
  if (!servers.ok()) return Fail(std::string(servers.status().message()));
  sc::HttpEdge edge;
  edge.host_allow = http_host_allow;
  auto http = sc::HttpEndpoint::Start(core->get(), http_host, http_port, {}, {tls.get(), &gate}, edge);
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
               tls && tls->has_client_ca()
                   ? (tokens && worker_rules.empty() ? "; workers need client certificates and worker tokens"
                      : tokens ? "; workers need a worker token or a certificate matching --worker-cert-match"
                               : "; workers need client certificates")
                   : "");
  if (servers->worker) {
    ready_worker_addr = absl::StrCat(worker_listen.substr(0, worker_listen.rfind(':')), ":", servers->worker_port);
    spdlog::info("serving workers on {}; client messages limited to {} MiB", ready_worker_addr,
                 sc::kClientMessageBytes >> 20);
  }
  if (leader) {
    spdlog::info("serving {} ms after taking the lead (recovery and binding)",
                 std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - recovery_start)
                     .count());
  }
  if (!ready_file.empty()) {
    if (auto s = WriteReadyFile(ready_file, grpc_addr, http_addr, ready_worker_addr, "leader"); !s.ok()) {
      return Fail(std::string(s.message()));
    }
  }

  // The leader renews its lease on a thread of its own, so a slow tick never lets it lapse;
  // a lost lease ends the process at once (another coordinator may be taking over).
  std::thread renewer;
  if (leader) {
    renewer = std::thread([&leader] {
      while (!g_stop) {
        std::this_thread::sleep_for(std::chrono::milliseconds(leader->options().renew_ms));
        if (auto s = leader->Renew(); !s.ok()) {
          spdlog::critical("stepping down: {}; exiting so a standby leads alone", std::string(s.message()));
          spdlog::shutdown();
          std::_Exit(3);
        }
      }
    });
  }
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
  if (renewer.joinable()) renewer.join();
  servers->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  if (leader) leader->Release();  // after the last call is answered
  return 0;
}
