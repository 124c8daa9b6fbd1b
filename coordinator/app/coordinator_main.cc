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
#include "common/files.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "coordinator/app/coordinator_flags.h"
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

int Fail(const absl::Status& status, int code = 1) { return Fail(std::string(status.message()), code); }

// Where this process serves. A standby learns its ports when it binds them, and the leader
// it becomes binds the same ones.
struct Endpoints {
  std::string listen;         // HOST:PORT of gRPC (--listen or --insecure-listen)
  bool insecure = false;      // --insecure-listen
  std::string worker_listen;  // "": workers share `listen`
  std::string http_host;
  int http_port = 0;
};

// What the ports are defended with.
struct Security {
  std::unique_ptr<sc::TlsMaterial> tls;
  std::vector<sc::WorkerCertificateRule> worker_rules;
  std::unique_ptr<sc::TokenTable> tokens;
  bool client_certificates() const { return tls && tls->has_client_ca(); }
};

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

// "HOST:PORT" with the port a server bound in place of the one asked for (0: any).
std::string WithPort(const std::string& address, int port) {
  return absl::StrCat(address.substr(0, address.rfind(':')), ":", port);
}

absl::StatusOr<Security> LoadSecurity(const sc::CoordinatorFlags& flags, bool insecure) {
  Security security;
  if (!flags.tls_cert.empty() || !flags.tls_key.empty() || !flags.tls_client_ca.empty()) {
    if (insecure) return absl::InvalidArgumentError("--insecure-listen serves plaintext; with --tls-cert use --listen");
    // Private copies of the key: beside a SQLite file, else in this machine's temporary
    // folder (never in a results folder other machines share).
    const std::string tls_dir =
        sc::IsPostgresUrl(flags.db)
            ? (std::filesystem::temp_directory_path() / absl::StrCat("spriteforge-coordinator-tls-", getpid())).string()
            : flags.db + "-tls";
    ASSIGN_OR_RETURN(security.tls, sc::TlsMaterial::Load({flags.tls_cert, flags.tls_key, flags.tls_client_ca}, tls_dir));
  }
  for (const std::string& text : flags.worker_cert_match) {
    ASSIGN_OR_RETURN(sc::WorkerCertificateRule rule, sc::ParseWorkerCertificateRule(text));
    security.worker_rules.push_back(rule);
  }
  if (!security.worker_rules.empty() && !security.client_certificates()) {
    return absl::InvalidArgumentError(
        "--worker-cert-match needs --tls-client-ca: it names which client certificates are workers'");
  }
  if (!flags.auth.empty()) {
    ASSIGN_OR_RETURN(sc::TokenTable tokens, sc::TokenTable::Load(flags.auth));
    security.tokens = std::make_unique<sc::TokenTable>(std::move(tokens));
  }
  return security;
}

// Where to serve and with what defences, from the flags and the files they name, checked
// before anything is opened: every error here is the operator's (exit code 2).
absl::Status Prepare(const sc::CoordinatorFlags& flags, Endpoints* at, Security* security) {
  at->insecure = !flags.insecure_listen.empty();
  if (at->insecure == !flags.listen.empty()) {
    return absl::InvalidArgumentError("one of --listen or --insecure-listen is required");
  }
  at->listen = at->insecure ? flags.insecure_listen : flags.listen;
  at->worker_listen = flags.worker_listen;
  ASSIGN_OR_RETURN(*security, LoadSecurity(flags, at->insecure));
  RETURN_IF_ERROR(sc::CheckExposure({at->listen, at->worker_listen, flags.http, at->insecure,
                                     security->tls != nullptr, security->client_certificates(),
                                     security->tokens != nullptr}));
  if (!SplitHostPort(flags.http, &at->http_host, &at->http_port)) {
    return absl::InvalidArgumentError("--http: expected HOST:PORT, got '" + flags.http + "'");
  }
  return absl::OkStatus();
}

// Ports before the store: a second coordinator on a used port leaves no files behind.
absl::StatusOr<std::unique_ptr<sc::Store>> OpenStore(const std::string& db, const Endpoints& at,
                                                     const std::string& http) {
  for (const auto& [address, what] : {std::pair{at.listen, ""}, {at.worker_listen, " for workers"},
                                      {http, " for HTTP"}}) {
    if (address.empty()) continue;
    RETURN_IF_ERROR(sc::CheckAddressFree(address, what));
  }
  if (!sc::IsPostgresUrl(db)) RETURN_IF_ERROR(sc::CheckDatabaseFile(db));
  return sc::Store::Open(db);
}

void InstallSignalHandlers() {
  std::signal(SIGINT, [](int) { g_stop = true; });
  std::signal(SIGTERM, [](int) { g_stop = true; });
  std::signal(SIGHUP, [](int) { g_reload = true; });
}

[[noreturn]] void StepDown(const absl::Status& why, const char* so) {
  spdlog::critical("stepping down: {}; exiting so {}", std::string(why.message()), so);
  spdlog::shutdown();
  std::_Exit(3);
}

// A shared database: serves as a standby (every call answered with the leader's address)
// until this coordinator holds the leader lease. Returns the lease, or null when stopped
// while waiting. `at` takes the ports the standby bound, so the ready file stays true.
absl::StatusOr<std::unique_ptr<sc::LeaderLeaseKeeper>> StandByUntilLeading(const sc::CoordinatorFlags& flags,
                                                                           sc::Store& store, sc::TlsMaterial* tls,
                                                                           Endpoints* at) {
  ASSIGN_OR_RETURN(std::unique_ptr<sc::Store> own, sc::Store::Open(flags.db));  // the lease's own connection
  ASSIGN_OR_RETURN(std::unique_ptr<sc::StandbyServers> standby,
                   sc::StandbyServers::Start(at->listen, at->worker_listen, at->http_host, at->http_port, tls));
  const std::string host = at->listen.substr(0, at->listen.rfind(':'));
  char hostname[256] = {};
  gethostname(hostname, sizeof hostname - 1);
  // Told to clients by standbys: a wildcard address names this machine instead.
  const bool wildcard = host == "0.0.0.0" || host == "[::]" || host == "::";
  sc::LeaderOptions lead;
  lead.address = absl::StrCat(wildcard ? hostname : host, ":", standby->client_port);
  lead.id = absl::StrCat(hostname, ":", getpid(), ":", lead.address);
  lead.lease_ms = flags.leader_lease_seconds * 1000LL;
  // Later binds reuse the ports the standby picked.
  at->listen = absl::StrCat(host, ":", standby->client_port);
  if (!at->worker_listen.empty()) at->worker_listen = WithPort(at->worker_listen, standby->worker_port);
  at->http_port = standby->http_port;
  spdlog::info("on {} (HTTP {}:{}): waiting for the leader lease in {} ({})", at->listen, at->http_host, at->http_port,
               store.Backend(), lead.id);
  auto leader = std::make_unique<sc::LeaderLeaseKeeper>(std::move(own), lead);
  std::string followed;
  absl::Status ready_written = absl::OkStatus();
  auto waited = leader->WaitToLead(g_stop, [&](const sc::LeaderLease& lease) {
    standby->SetLeader(lease.address);
    if (lease.holder != followed) spdlog::info("standby: leader is {} ({})", lease.address, lease.holder);
    // Written once it is clear another leads: a coordinator that leads at once writes
    // only the leader's ready file, so whoever waits for it never meets the standby.
    if (followed.empty() && !flags.ready_file.empty()) {
      ready_written = WriteReadyFile(flags.ready_file, at->listen, absl::StrCat(at->http_host, ":", at->http_port),
                                     at->worker_listen, "standby");
    }
    followed = lease.holder;
  });
  RETURN_IF_ERROR(ready_written);
  standby->Stop();
  if (!waited.ok()) return nullptr;
  spdlog::info("leading: holding the leader lease ({} s, epoch {}) in {}", flags.leader_lease_seconds, leader->epoch(),
               store.Backend());
  // Every write of this coordinator checks the epoch in its own transaction: a leader
  // paused past its lease (SIGSTOP, a long GC-like stall, a VM migration) that wakes after a
  // takeover writes nothing and exits, as on a lost lease.
  store.SetFencingEpoch(leader->epoch(),
                        [](const absl::Status& fenced) { StepDown(fenced, "the new leader leads alone"); });
  return leader;
}

void LogServing(const sc::CoordinatorFlags& flags, const Endpoints& at, const Security& security,
                const std::string& grpc_addr, const std::string& http_addr, const std::string& worker_addr) {
  spdlog::info("serving gRPC on {}, HTTP on {} (web page at /, API at /v1 and /sdapi/v1, /metrics, /stats, "
               "/healthz); results in {}", grpc_addr, http_addr, flags.output);
  const auto& tokens = security.tokens;
  if (at.insecure) {
    spdlog::warn("--insecure-listen {}: plaintext{}; anyone who reaches this port can {}", at.listen,
                 tokens ? ", tokens travel unencrypted" : " and no tokens",
                 tokens ? "read the tokens sent to it" : "submit, cancel and read every job and connect as a worker");
  }
  spdlog::info("security: {}; {}{}", security.tls ? "TLS" : "plaintext",
               tokens ? absl::StrCat(tokens->size(), " tokens from ", flags.auth) : "no tokens",
               security.client_certificates()
                   ? (tokens && security.worker_rules.empty()
                          ? "; workers need client certificates and worker tokens"
                      : tokens ? "; workers need a worker token or a certificate matching --worker-cert-match"
                               : "; workers need client certificates")
                   : "");
  if (!worker_addr.empty()) {
    spdlog::info("serving workers on {}; client messages limited to {} MiB", worker_addr,
                 sc::kClientMessageBytes >> 20);
  }
}

// SIGHUP: the TLS files and the token table again; a file that does not load keeps the
// one in use.
void Reload(Security& security, const std::string& auth_file) {
  if (security.tls) {
    if (auto s = security.tls->Reload(); s.ok()) spdlog::info("SIGHUP: TLS certificate and key reloaded");
    else spdlog::error("SIGHUP: keeping the current TLS files: {}", std::string(s.message()));
  }
  if (security.tokens) {
    if (auto s = security.tokens->Reload(auth_file); s.ok()) {
      spdlog::info("SIGHUP: {} tokens reloaded from {}", security.tokens->size(), auth_file);
    } else {
      spdlog::error("SIGHUP: keeping the current tokens: {}", std::string(s.message()));
    }
  }
}

// Until SIGINT or SIGTERM: the core's housekeeping four times a second and SIGHUP's
// reloads. The leader renews its lease on a thread of its own, so a slow tick never lets it
// lapse; a lost lease ends the process at once (another coordinator may be taking over).
void Serve(sc::Coordinator& core, Security& security, const std::string& auth_file, sc::LeaderLeaseKeeper* leader) {
  std::thread renewer;
  if (leader) {
    renewer = std::thread([leader] {
      while (!g_stop) {
        std::this_thread::sleep_for(std::chrono::milliseconds(leader->options().renew_ms));
        if (auto s = leader->Renew(); !s.ok()) StepDown(s, "a standby leads alone");
      }
    });
  }
  while (!g_stop) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    core.Tick();
    if (g_reload.exchange(false)) Reload(security, auth_file);
  }
  spdlog::info("shutting down");
  if (renewer.joinable()) renewer.join();
}

// Checks the command line, opens the store (standing by while another coordinator leads
// a shared one), recovers, starts the gRPC and HTTP servers, serves until told to stop,
// then drains.
int Run(const sc::CoordinatorFlags& flags) {
  if (auto s = spriteforge::ConfigureLogging(flags.log); !s.ok()) return Fail(s, 2);
  Endpoints at;
  Security security;
  if (auto s = Prepare(flags, &at, &security); !s.ok()) return Fail(s, 2);
  const sc::CoordinatorOptions options = sc::CoreOptionsOf(flags);
  auto store = OpenStore(flags.db, at, flags.http);
  if (!store.ok()) return Fail(store.status());

  InstallSignalHandlers();
  std::unique_ptr<sc::LeaderLeaseKeeper> leader;
  if (sc::IsPostgresUrl(flags.db)) {
    auto led = StandByUntilLeading(flags, **store, security.tls.get(), &at);
    if (!led.ok()) return Fail(led.status());
    if (!*led) {
      spdlog::info("shutting down");
      return 0;
    }
    leader = std::move(*led);
  }
  const auto recovery_start = std::chrono::steady_clock::now();
  auto core = sc::Coordinator::Create(std::move(*store), options);
  if (!core.ok()) return Fail(core.status());

  sc::Gatekeeper gate({security.tokens.get(), flags.submits_per_minute, security.client_certificates(),
                       security.worker_rules});
  sc::ClientService client_service(core->get(), &gate);
  sc::WorkerGatewayService gateway(core->get(), &gate);
  auto servers = sc::StartGrpcServers(at.listen, at.worker_listen, &client_service, &gateway, security.tls.get());
  if (!servers.ok()) return Fail(servers.status());
  sc::HttpEdge edge;
  edge.host_allow = flags.http_host_allow;
  auto http =
      sc::HttpEndpoint::Start(core->get(), at.http_host, at.http_port, {}, {security.tls.get(), &gate}, edge);
  if (!http.ok()) return Fail(http.status());

  const std::string grpc_addr = WithPort(at.listen, servers->client_port);
  const std::string http_addr = absl::StrCat(at.http_host, ":", (*http)->port());
  const std::string worker_addr = servers->worker ? WithPort(at.worker_listen, servers->worker_port) : "";
  LogServing(flags, at, security, grpc_addr, http_addr, worker_addr);
  if (leader) {
    spdlog::info("serving {} ms after taking the lead (recovery and binding)",
                 std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - recovery_start)
                     .count());
  }
  if (!flags.ready_file.empty()) {
    if (auto s = WriteReadyFile(flags.ready_file, grpc_addr, http_addr, worker_addr, "leader"); !s.ok()) return Fail(s);
  }

  Serve(**core, security, flags.auth, leader.get());
  servers->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  if (leader) leader->Release();  // after the last call is answered
  return 0;
}

int Backup(const sc::BackupFlags& flags) {
  if (sc::IsPostgresUrl(flags.db)) {
    return Fail("backup copies SQLite files; back up a PostgreSQL database with pg_dump", 2);
  }
  auto report = sc::BackupDatabase(flags.db, flags.out);
  if (!report.ok()) return Fail(report.status());
  std::printf("%s: %d pages, %lld bytes, integrity_check ok\n", flags.out.c_str(), report->pages,
              static_cast<long long>(report->bytes));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  spriteforge::InstallCrashReporting(argv[0]);
  sc::CommandLine command;
  if (int code = sc::ParseCommandLine(argc, argv, &command); code >= 0) return code;
  return command.backup ? Backup(*command.backup) : Run(command.serve);
}
