// spriteforge-worker: loads the engine once and serves the coordinator's batches.
//
//   spriteforge-worker --coordinator HOST:PORT --model PATH [--model-name NAME] [--config DIR]
//       [--tokenizer DIR] [--device cpu|cuda[:N]] [--dtype fp32|fp16|bf16|fp8] [--max-batch N]
//       [--reserve-gb X] [--calibrate WxH] [--worker-id ID] [--prefetch N] [--encode-threads N]
//       [--palette-dir DIR] [--lora-dir DIR] [--controlnet-dir DIR] [--ip-adapter-dir DIR]
//       [--cache-dir DIR] [--blob-cache-gb N]
//       [--log-level LEVEL] [--log-format text|json]
//       [--tls-ca FILE [--tls-cert FILE --tls-key FILE]] [--token TOKEN]
//
// --lora-dir: the folder of .safetensors LoRAs manifests may name (`lora: [{name: NAME}]`
// loads NAME.safetensors), like ComfyUI's models/loras. LoRAs and start images a client
// uploaded are fetched from the coordinator once into --cache-dir (default: a new folder
// under the system's temporary folder) and reused from there. The worker tells the
// coordinator the SHA-256 of every file of its folders; it reads them on a thread of its own
// while the model loads, and remembers them in --cache-dir/file-hashes.tsv (by path, size
// and modification time), so a later start with the same --cache-dir reads none again.
//
// --tls-ca: the coordinator serves TLS with a certificate from this CA; --tls-cert/--tls-key:
// this worker's client certificate, for coordinators that require one (--tls-client-ca).
// --token (or SPRITEFORGE_TOKEN): a token of role worker, for coordinators with --auth.
//
// --palette-dir: the folder whose .hex/.gpl/.png palettes manifests may name (by file name
// only); without it manifests use built-in palettes and inline colours.
//
// Every flag can come from SPRITEFORGE_<FLAG> instead (SPRITEFORGE_COORDINATOR, ...).
// The model is advertised as NAME (default: the file or folder name without extension;
// builtin:tiny is "tiny-sdxl"). The worker dials in, so a second machine only needs the
// coordinator's address. It reconnects with backoff when the coordinator goes away.
// --coordinator A,B: coordinators sharing one database (one leads, the others stand by
// and refuse with UNAVAILABLE); the worker moves to the next address whenever a session
// ends, and backs off only after a whole round failed.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/cli.h"
#include "common/logging.h"
#include "common/rpc/channel.h"
#include "spdlog/spdlog.h"
#include "spriteforge/engine/engine.h"
#include "worker/health_endpoint.h"
#include "worker/sprite.h"
#include "worker/worker_session.h"

namespace sw = spriteforge::worker;
namespace se = spriteforge::engine;

namespace {

std::atomic<bool> g_stop{false};
sw::WorkerStatus g_status;  // what --http reports

// The command line, as CLI11 fills it.
struct WorkerOptions {
  std::string coordinator;        // one address or several, comma-separated
  se::LoadOptions load;           // its dtype comes from `dtype` once parsed
  std::string dtype;              // chosen by device unless given
  std::string vae_dtype;          // empty: dtype's
  std::string model_name;         // empty: from the model's path
  std::string worker_id;          // empty: host and device
  std::vector<std::string> calibrate;
  int max_batch = 8;
  int prefetch = 1;
  int encode_threads = 0;
  double reserve_gb = 2.0;
  double blob_cache_gb = 20.0;
  std::string palette_dir, lora_dir, controlnet_dir, ip_adapter_dir;
  std::string cache_dir;          // empty: a new temporary folder
  std::string http;               // empty: no health endpoint
  spriteforge::ChannelSecurity security;
  spriteforge::LogOptions log;

  WorkerOptions() { load.device = "cpu"; }
};

// Why the worker stops with an error: the line it prints and its exit status.
struct Failure {
  std::string message;
  int exit_code = 1;  // 2: the command line is wrong
};
using MaybeFailure = std::optional<Failure>;

Failure UsageError(std::string message) { return {std::move(message), 2}; }

int Fail(const Failure& failure) {
  std::fprintf(stderr, "spriteforge-worker: error: %s\n", failure.message.c_str());
  return failure.exit_code;
}

std::string DefaultModelName(const std::string& path) {
  if (path == "builtin:tiny") return "tiny-sdxl";
  if (path.rfind("builtin:", 0) == 0) return path.substr(8);
  std::filesystem::path p(path);
  while (!p.empty() && p.filename().empty()) p = p.parent_path();  // "folder/"
  return p.stem().string();
}

std::string HostName() {
  char host[256] = "worker";
  gethostname(host, sizeof host - 1);
  return host;
}

void AddFlags(CLI::App& app, WorkerOptions* o) {
  app.add_option("--coordinator", o->coordinator,
                 "The coordinator's gRPC address, HOST:PORT; several, comma-separated, for coordinators sharing "
                 "one database")
      ->required();
  app.add_option("--model", o->load.model_path,
                 "SDXL checkpoint: a single .safetensors file, a diffusers folder, or builtin:tiny (random weights)")
      ->required();
  app.add_option("--model-name", o->model_name,
                 "The name manifests use for this model (default: the file or folder name without extension)");
  app.add_option("--config", o->load.config_dir, "diffusers folder with the model's configuration, for single files");
  app.add_option("--tokenizer", o->load.tokenizer_dir, "Folder with the CLIP tokenizer's vocab.json and merges.txt (default: the model folder's tokenizer/, else the vocabulary shipped with spriteforge)");
  app.add_option("--device", o->load.device, "cpu, cuda or cuda:N");
  app.add_option("--dtype", o->dtype, "fp32, fp16, bf16 or fp8 (default: fp32 on cpu, fp16 on cuda)");
  app.add_option("--vae-dtype", o->vae_dtype,
                 "The VAE's precision: fp32, fp16 or bf16 (default: --dtype's, bf16 for fp8; bf16 cannot overflow "
                 "where SDXL's VAE does in fp16)");
  app.add_option("--max-batch", o->max_batch, "Most images per batch")->check(CLI::Range(1, 64));
  app.add_option("--reserve-gb", o->reserve_gb, "Device memory kept free, in GB")->check(CLI::NonNegativeNumber);
  app.add_option("--calibrate", o->calibrate,
                 "Measure the peak memory of batches of 1 and 2 at WxH before taking work (repeatable)")
      ->allow_extra_args(false);
  app.add_option("--worker-id", o->worker_id,
                 "Stable id of this worker (default: HOST-DEVICE, as gpu1-cuda0; workers sharing a device need one "
                 "each)");
  app.add_option("--prefetch", o->prefetch, "Batches held ahead of the one rendering")->check(CLI::Range(0, 4));
  app.add_option("--encode-threads", o->encode_threads, "Threads encoding PNGs (0: the cores, up to 16)")
      ->check(CLI::Range(0, 64));
  app.add_option("--palette-dir", o->palette_dir,
                 "Folder of .hex/.gpl/.png palettes manifests may name (by file name only)");
  app.add_option("--lora-dir", o->lora_dir, "Folder of .safetensors LoRAs manifests may name (by file stem)");
  app.add_option("--controlnet-dir", o->controlnet_dir,
                 "Folder of ControlNets manifests may name: diffusers folders, or .safetensors with config.json beside");
  app.add_option("--ip-adapter-dir", o->ip_adapter_dir,
                 "Folder of IP-Adapter .safetensors files and image encoder folders (image_encoder/ by default)");
  app.add_option("--cache-dir", o->cache_dir,
                 "Folder for uploaded files fetched from the coordinator (default: a new temporary folder)");
  app.add_option("--blob-cache-gb", o->blob_cache_gb,
                 "Most the --cache-dir files may take, in GB; the least recently used go first (0: no bound)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--http", o->http,
                 "Health endpoint, PORT (on loopback) or HOST:PORT: /healthz ready once the model is loaded and a "
                 "coordinator accepted the worker, /metrics with its memory and throughput");
  spriteforge::AddTlsFlags(app, o->security);
  app.add_option("--token", o->security.token, "Worker token, for coordinators with --auth");
  spriteforge::cli::AddLogFlags(app, &o->log);
}

// Checked now, before the model loads: a bad flag or file is a usage error, not a reconnect
// loop. Settles the dtype, the palette folder and the cache folder; fills `addresses`.
MaybeFailure Prepare(WorkerOptions* o, std::vector<std::string>* addresses) {
  if (auto s = spriteforge::ConfigureLogging(o->log); !s.ok()) return UsageError(std::string(s.message()));
  if (o->dtype.empty()) {
    o->load.dtype = o->load.device == "cpu" ? se::Dtype::kFp32 : se::Dtype::kFp16;
  } else if (auto parsed = se::ParseDtype(o->dtype); parsed.ok()) {
    o->load.dtype = *parsed;
  } else {
    return UsageError("--dtype: " + std::string(parsed.status().message()));
  }
  if (!o->vae_dtype.empty()) {
    auto parsed = se::ParseDtype(o->vae_dtype);
    if (!parsed.ok() || *parsed == se::Dtype::kFp8) return UsageError("--vae-dtype: fp32, fp16 or bf16");
    o->load.vae_dtype = *parsed;
  }
  auto split = spriteforge::SplitCoordinatorAddresses(o->coordinator);
  if (!split.ok()) return UsageError(std::string(split.status().message()));
  *addresses = std::move(*split);
  if (auto dialed = spriteforge::DialCoordinator(addresses->front(), o->security, {}); !dialed.ok()) {
    return UsageError(std::string(dialed.status().message()));
  }
  if (!o->palette_dir.empty()) {
    std::error_code ec;
    if (!std::filesystem::is_directory(o->palette_dir, ec)) {
      return UsageError("--palette-dir: " + o->palette_dir + " is not a folder");
    }
    sw::SetPaletteFolder(o->palette_dir);
  }
  for (const auto& [flag, dir] : {std::pair<const char*, const std::string*>{"--lora-dir", &o->lora_dir},
                                   {"--controlnet-dir", &o->controlnet_dir},
                                   {"--ip-adapter-dir", &o->ip_adapter_dir}}) {
    std::error_code ec;
    if (!dir->empty() && !std::filesystem::is_directory(*dir, ec)) {
      return UsageError(std::string(flag) + ": " + *dir + " is not a folder");
    }
  }
  if (o->cache_dir.empty()) {
    std::string templ = (std::filesystem::temp_directory_path() / "spriteforge-cache-XXXXXX").string();
    if (!mkdtemp(templ.data())) return Failure{"cannot create a cache folder under " + templ};
    o->cache_dir = templ;
  }
  return std::nullopt;
}

MaybeFailure LoadEngine(const se::LoadOptions& load, std::unique_ptr<se::Engine>* engine) {
  if (load.model_path.rfind("builtin:", 0) == 0) {
    spdlog::warn("model {} has RANDOM weights: its images are noise, useful only to exercise the system",
                 load.model_path);
  }
  auto loaded = se::Engine::Load(load);
  if (!loaded.ok()) return Failure{std::string(loaded.status().message())};
  *engine = std::move(*loaded);
  return std::nullopt;
}

sw::WorkerIdentity IdentityOf(const WorkerOptions& o) {
  sw::WorkerIdentity identity;
  identity.worker_id = o.worker_id.empty() ? sw::DefaultWorkerId(HostName(), o.load.device) : o.worker_id;
  identity.model_name = o.model_name.empty() ? DefaultModelName(o.load.model_path) : o.model_name;
  identity.model_path = o.load.model_path;
  identity.max_batch = o.max_batch;
  identity.prefetch = o.prefetch;
  identity.encode_threads = o.encode_threads;
  identity.reserve_bytes = static_cast<uint64_t>(o.reserve_gb * 1e9);
  identity.lora_dir = o.lora_dir;
  identity.controlnet_dir = o.controlnet_dir;
  identity.ip_adapter_dir = o.ip_adapter_dir;
  identity.cache_dir = o.cache_dir;
  identity.cache_max_bytes = static_cast<uint64_t>(o.blob_cache_gb * 1e9);
  identity.status = &g_status;
  return identity;
}

// The measured peak of one and two images at each shape, so the coordinator's memory model
// starts from this device's numbers rather than a prior.
MaybeFailure Calibrate(se::Engine* engine, const std::vector<std::string>& shapes,
                       std::vector<spriteforge::v1::Calibration>* calibrations) {
  for (const std::string& shape : shapes) {
    std::vector<std::string> wh = absl::StrSplit(shape, 'x');
    int w = 0, h = 0;
    if (wh.size() != 2 || !absl::SimpleAtoi(wh[0], &w) || !absl::SimpleAtoi(wh[1], &h)) {
      return UsageError("--calibrate: expected WxH, got '" + shape + "'");
    }
    for (int batch : {1, 2}) {
      auto stats = engine->Calibrate(batch, h, w);
      if (!stats.ok()) return Failure{absl::StrCat("calibration at ", shape, ": ", stats.status().message())};
      spriteforge::v1::Calibration c;
      c.set_batch(batch);
      c.set_width(w);
      c.set_height(h);
      c.set_peak_bytes(stats->peak_allocated_bytes);
      calibrations->push_back(c);
      spdlog::info("calibrated {} x {}x{}: peak {:.2f} GB", batch, w, h, stats->peak_allocated_bytes / 1e9);
    }
  }
  return std::nullopt;
}

// Sessions with the coordinators in turn until a signal stops the worker.
MaybeFailure Serve(se::Engine* engine, const sw::WorkerIdentity& identity, const std::vector<std::string>& addresses,
                   const spriteforge::ChannelSecurity& security) {
  std::signal(SIGINT, [](int) { g_stop = true; });
  std::signal(SIGTERM, [](int) { g_stop = true; });
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetMaxSendMessageSize(256 << 20);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // gRPC waits at least this long for a TCP connection (default 20 s). A replaced coordinator
  // container leaves its old address in DNS for a moment: a dial to it must give up in
  // seconds, not hold the worker idle while the new one already serves.
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 2000);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 8000);
  // Backoff between attempts: 0.25 s doubling to 8 s, reset after a session that registered.
  int backoff_ms = 250;
  spdlog::info("worker {} serving model {} on {}", identity.worker_id, identity.model_name, engine->Device().name);
  size_t next = 0;        // the address to dial
  size_t failed_round = 0;  // sessions failed since the last registered one
  while (!g_stop) {
    const std::string& address = addresses[next];
    auto channel = spriteforge::DialCoordinator(address, security, args);
    if (!channel.ok()) return Failure{std::string(channel.status().message())};
    sw::WorkerSession session(engine, identity, *channel);
    std::atomic<bool>& registered = g_status.connected;  // true while a coordinator holds us
    registered = false;
    const absl::Status status = session.Run(&registered, g_stop);
    const bool was_registered = registered.exchange(false);
    if (g_stop) break;
    if (was_registered) {
      backoff_ms = 250;
      failed_round = 0;
    }
    next = (next + 1) % addresses.size();
    if (++failed_round < addresses.size() && !was_registered) {
      spdlog::warn("{}: {}; trying {}", address, std::string(status.message()), addresses[next]);
      continue;  // the others before backing off
    }
    failed_round = 0;
    spdlog::warn("{}: {}; reconnecting to {} in {} ms", address, std::string(status.message()), addresses[next],
                 backoff_ms);
    for (int waited = 0; waited < backoff_ms && !g_stop; waited += 50) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    backoff_ms = std::min(backoff_ms * 2, 8000);
  }
  return std::nullopt;
}

// The health endpoint, up before the model loads so that probes see "loading the model".
MaybeFailure StartHealthEndpoint(const WorkerOptions& o, const std::unique_ptr<se::Engine>& engine,
                                 std::unique_ptr<sw::HealthEndpoint>* endpoint) {
  if (o.http.empty()) return std::nullopt;
  auto started = sw::HealthEndpoint::Start(o.http, &g_status, IdentityOf(o).worker_id, [&engine] {
    // The engine is set before model_loaded and never changes after.
    return g_status.model_loaded ? sw::EngineView{engine->Memory(), engine->Device()} : sw::EngineView{};
  });
  if (!started.ok()) return UsageError(std::string(started.status().message()));
  *endpoint = std::move(*started);
  spdlog::info("health endpoint on port {}: /healthz, /metrics", (*endpoint)->port());
  return std::nullopt;
}

// Checks the flags, loads the model once, then serves the coordinators until stopped.
int Run(WorkerOptions options) {
  std::vector<std::string> addresses;
  if (MaybeFailure failed = Prepare(&options, &addresses)) return Fail(*failed);
  std::unique_ptr<se::Engine> engine;
  std::unique_ptr<sw::HealthEndpoint> health;
  if (MaybeFailure failed = StartHealthEndpoint(options, engine, &health)) return Fail(*failed);
  // The model's and the folders' files are hashed while the model loads (remembered ones are
  // not read again); the first registration waits for the rest.
  sw::FileHashes file_hashes(sw::FileHashesPath(options.cache_dir));
  std::thread hashing([&file_hashes, model = options.load.model_path,
                       dirs = std::vector<std::string>{options.lora_dir, options.controlnet_dir,
                                                       options.ip_adapter_dir}] {
    const auto start = std::chrono::steady_clock::now();
    sw::HashModelFolders(dirs, &file_hashes, model);
    if (file_hashes.hashed() > 0) {
      spdlog::info("hashed {} model files in {:.1f} s", file_hashes.hashed(),
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
  });
  // A start that fails meanwhile waits for the file being read at most.
  struct Joined {
    std::thread& t;
    sw::FileHashes& hashes;
    ~Joined() {
      hashes.StopReading();
      if (t.joinable()) t.join();
    }
  } joined{hashing, file_hashes};
  if (MaybeFailure failed = LoadEngine(options.load, &engine)) return Fail(*failed);
  sw::WorkerIdentity identity = IdentityOf(options);
  identity.file_hashes = &file_hashes;
  if (MaybeFailure failed = Calibrate(engine.get(), options.calibrate, &identity.calibrations)) return Fail(*failed);
  hashing.join();
  g_status.model_loaded = true;
  if (MaybeFailure failed = Serve(engine.get(), identity, addresses, options.security)) return Fail(*failed);
  spdlog::info("worker stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  spriteforge::InstallCrashReporting(argv[0]);
  CLI::App app("spriteforge-worker: loads an SDXL model once, dials the coordinator and runs the batches it "
               "hands out.",
               "spriteforge-worker");
  spriteforge::cli::Configure(app);
  WorkerOptions options;
  AddFlags(app, &options);
  spriteforge::cli::ReadEnvironment(app);
  // Not SPRITEFORGE_HTTP: that is the coordinator's, often set beside the worker's settings.
  app.get_option("--http")->envname("SPRITEFORGE_WORKER_HTTP");
  if (int code = spriteforge::cli::Parse(app, argc, argv); code >= 0) return code;
  return Run(std::move(options));
}
