// spriteforge-worker: loads the engine once and serves the coordinator's batches.
//
//   spriteforge-worker --coordinator HOST:PORT --model PATH [--model-name NAME] [--config DIR]
//       [--tokenizer DIR] [--device cpu|cuda[:N]] [--dtype fp32|fp16|bf16|fp8] [--max-batch N]
//       [--reserve-gb X] [--calibrate WxH] [--worker-id ID] [--prefetch N] [--encode-threads N]
//       [--palette-dir DIR]
//
// --palette-dir: the folder whose .hex/.gpl/.png palettes manifests may name (by file name
// only); without it manifests use built-in palettes and inline colours.
//
// The model is advertised as NAME (default: the file or folder name without extension;
// builtin:tiny is "tiny-sdxl"). The worker dials in, so a second machine only needs the
// coordinator's address. It reconnects with backoff when the coordinator goes away.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <random>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "service/sprite.h"
#include "service/worker_session.h"
#include "spdlog/spdlog.h"
#include "spriteforge/common/flags.h"
#include "spriteforge/engine/engine.h"

namespace sw = spriteforge::worker;
namespace se = spriteforge::engine;

namespace {

constexpr char kUsage[] =
    "usage: spriteforge-worker --coordinator HOST:PORT --model PATH [--model-name NAME]\n"
    "  [--config DIR] [--tokenizer DIR] [--device cpu|cuda[:N]] [--dtype fp32|fp16|bf16|fp8]\n"
    "  [--max-batch N] [--reserve-gb X] [--calibrate WxH] [--worker-id ID] [--palette-dir DIR]\n"
    "  [--prefetch N (batches held ahead, default 1)] [--encode-threads N (default: cores, up to 8)]\n";

std::atomic<bool> g_stop{false};

int Fail(const std::string& message, int code = 1) {
  std::fprintf(stderr, "spriteforge-worker: error: %s\n", message.c_str());
  return code;
}

std::string DefaultModelName(const std::string& path) {
  if (path == "builtin:tiny") return "tiny-sdxl";
  if (path.rfind("builtin:", 0) == 0) return path.substr(8);
  std::filesystem::path p(path);
  while (!p.empty() && p.filename().empty()) p = p.parent_path();  // "folder/"
  return p.stem().string();
}

std::string DefaultWorkerId() {
  char host[256] = "worker";
  gethostname(host, sizeof host - 1);
  std::mt19937 rng(std::random_device{}());
  return absl::StrCat(host, "-", getpid(), "-", rng() % 10000);
}

}  // namespace

int main(int argc, char** argv) {
  auto flags = spriteforge::Flags::Parse(
      std::vector<std::string>(argv + 1, argv + argc),
      {"--coordinator", "--model", "--model-name", "--config", "--tokenizer", "--device", "--dtype", "--max-batch",
       "--reserve-gb", "--calibrate", "--worker-id", "--prefetch", "--encode-threads", "--palette-dir"},
      {"--help"});
  if (!flags.ok()) return Fail(absl::StrCat(flags.status().message(), "\n", kUsage), 2);
  if (flags->Has("--help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  const std::string coordinator = flags->Get("--coordinator");
  if (!flags->Has("--coordinator")) return Fail(absl::StrCat("--coordinator is required\n", kUsage), 2);
  if (!flags->Has("--model")) return Fail(absl::StrCat("--model is required\n", kUsage), 2);
  auto max_batch = flags->GetInt("--max-batch", 8);
  auto reserve_gb = flags->GetDouble("--reserve-gb", 2.0);
  if (!max_batch.ok() || *max_batch < 1 || *max_batch > 64) return Fail("--max-batch must be in 1..64", 2);
  if (!reserve_gb.ok() || *reserve_gb < 0) return Fail("--reserve-gb must be a non-negative number", 2);
  auto prefetch = flags->GetInt("--prefetch", 1);
  auto encode_threads = flags->GetInt("--encode-threads", 0);
  if (!prefetch.ok() || *prefetch < 0 || *prefetch > 4) return Fail("--prefetch must be in 0..4", 2);
  if (!encode_threads.ok() || *encode_threads < 0 || *encode_threads > 64) {
    return Fail("--encode-threads must be in 0..64", 2);
  }

  if (flags->Has("--palette-dir")) {
    const std::string dir = flags->Get("--palette-dir");
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) return Fail("--palette-dir: " + dir + " is not a folder", 2);
    sw::SetPaletteFolder(dir);
  }

  se::LoadOptions load;
  load.model_path = flags->Get("--model");
  load.config_dir = flags->Get("--config");
  load.tokenizer_dir = flags->Get("--tokenizer");
  load.device = flags->Get("--device", "cpu");
  load.dtype = flags->Get("--dtype", load.device == "cpu" ? "fp32" : "fp16");
  if (load.model_path.rfind("builtin:", 0) == 0) {
    spdlog::warn("model {} has RANDOM weights: its images are noise, useful only to exercise the system",
                 load.model_path);
  }
  auto engine = se::Engine::Load(load);
  if (!engine.ok()) return Fail(std::string(engine.status().message()));

  sw::WorkerIdentity identity;
  identity.worker_id = flags->Get("--worker-id", DefaultWorkerId());
  identity.model_name = flags->Get("--model-name", DefaultModelName(load.model_path));
  identity.max_batch = *max_batch;
  identity.prefetch = *prefetch;
  identity.encode_threads = *encode_threads;
  identity.reserve_bytes = static_cast<uint64_t>(*reserve_gb * 1e9);
  // Calibration: the measured peak of one and two images at a shape, so the coordinator's
  // memory model starts from this device's numbers rather than a prior.
  for (const std::string& shape : flags->All("--calibrate")) {
    std::vector<std::string> wh = absl::StrSplit(shape, 'x');
    int w = 0, h = 0;
    if (wh.size() != 2 || !absl::SimpleAtoi(wh[0], &w) || !absl::SimpleAtoi(wh[1], &h)) {
      return Fail("--calibrate: expected WxH, got '" + shape + "'", 2);
    }
    for (int batch : {1, 2}) {
      auto stats = (*engine)->Calibrate(batch, h, w);
      if (!stats.ok()) return Fail(absl::StrCat("calibration at ", shape, ": ", stats.status().message()));
      spriteforge::v1::Calibration c;
      c.set_batch(batch);
      c.set_width(w);
      c.set_height(h);
      c.set_peak_bytes(stats->peak_allocated_bytes);
      identity.calibrations.push_back(c);
      spdlog::info("calibrated {} x {}x{}: peak {:.2f} GB", batch, w, h, stats->peak_allocated_bytes / 1e9);
    }
  }

  std::signal(SIGINT, [](int) { g_stop = true; });
  std::signal(SIGTERM, [](int) { g_stop = true; });
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetMaxSendMessageSize(256 << 20);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // Backoff between attempts: 0.25 s doubling to 8 s, reset after a session that registered.
  int backoff_ms = 250;
  spdlog::info("worker {} serving model {} on {}", identity.worker_id, identity.model_name, (*engine)->Device().name);
  while (!g_stop) {
    auto channel = grpc::CreateCustomChannel(coordinator, grpc::InsecureChannelCredentials(), args);
    sw::WorkerSession session(engine->get(), identity, channel);
    std::atomic<bool> registered{false};
    const absl::Status status = session.Run(&registered, g_stop);
    if (g_stop) break;
    if (registered) backoff_ms = 250;
    spdlog::warn("{}; reconnecting in {} ms", std::string(status.message()), backoff_ms);
    for (int waited = 0; waited < backoff_ms && !g_stop; waited += 50) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    backoff_ms = std::min(backoff_ms * 2, 8000);
  }
  spdlog::info("worker stopped");
  return 0;
}
